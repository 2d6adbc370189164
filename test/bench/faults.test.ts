/**
 * The short fault matrix (`npm run faults -- --short`): three faults, each in
 * a real deployment of its own (`snapper start --workers 2` on a Redis with
 * AOF) under small steady load. What a client must always see: no answered
 * publish lost, every consumer back; across Redis faults, nothing lost or
 * delivered twice at all.
 */
import test from 'ava'
import { faultNamed, markdownTable, runFault, type FaultRow } from '../../bench/faults/matrix.js'
import { SHORT } from '../../bench/faults/run.js'

const run = async (name: string): Promise<{ row: FaultRow; notes: string[] }> => {
  const notes: string[] = []
  const row = await runFault(faultNamed(name), { ...SHORT, log: () => {} }, notes)
  return { row, notes }
}

for (const name of SHORT.faults) {
  test.serial(`${name}: no answered publish lost, every consumer back`, async t => {
    const { row, notes } = await run(name)
    t.log(`\n${markdownTable([row])}\n${notes.join('\n')}`)
    t.is(row.error, undefined)
    t.true(row.answered > 0 && row.notified > 0, 'the load ran')
    t.is(row.lostAnswered, 0)
    t.is(row.openAtEnd, row.consumers)
    t.is(row.consumers, SHORT.load.consumers)
    if (name.startsWith('redis-')) {
      t.is(row.lostNotified, 0, 'a notification read during a Redis fault is stored once Redis is back')
      t.is(row.duplicated, 0)
      t.is(row.outOfOrder, 0)
    }
  })
}
