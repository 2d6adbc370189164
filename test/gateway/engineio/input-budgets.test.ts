import test from 'ava'
import { InputBudgets } from '../../../src/gateway/engineio/input-budgets.js'
import { eventually } from '../../helpers/eventually.js'

test('an idle budget is forgotten once it has refilled, with no take or release coming by', async t => {
  const budgets = new InputBudgets(1000, 100) // refills in 100 ms
  budgets.take('a')
  budgets.take('b')
  budgets.release('a')
  budgets.release('b')
  t.is(budgets.size, 2, 'idle, still filling up')
  await eventually(() => budgets.size === 0, {
    what: 'the refilled budgets to be forgotten',
    timeoutMs: 5000,
  })
})

test('a budget held by a session is kept', async t => {
  const budgets = new InputBudgets(1000, 100)
  budgets.take('held')
  budgets.take('gone')
  budgets.release('gone')
  await eventually(() => budgets.size === 1, { what: 'the idle budget to be forgotten', timeoutMs: 5000 })
  t.is(budgets.take('held') !== undefined && budgets.size, 1, 'the held one is still there')
  budgets.release('held')
  budgets.release('held')
  await eventually(() => budgets.size === 0, { what: 'the last budget to be forgotten', timeoutMs: 5000 })
  t.pass()
})
