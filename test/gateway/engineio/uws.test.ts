import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import test from 'ava'
import { assertNativeUws, loadUws } from '../../../src/gateway/engineio/uws.js'

const uwsModule = fileURLToPath(new URL('../../../src/gateway/engineio/uws.js', import.meta.url))

test('the native binary loads, and is checked', t => {
  const uWS = loadUws()
  t.is(typeof uWS.App, 'function')
  t.is(loadUws(), uWS, 'loaded once')
  t.notThrows(() => assertNativeUws(uWS))
})

test('anything else is refused with a clear error', t => {
  for (const fake of [undefined, null, {}, { App: () => ({}) }, { App() {}, getParts() {} }])
    t.throws(() => assertNativeUws(fake), { message: /uWebSockets\.js native binary did not load/ })
})

test('with UWS_USE_FALLBACK=1 (the slow JavaScript server) loadUws() throws', async t => {
  const script = `import(${JSON.stringify(uwsModule)}).then(m => m.loadUws())`
  const run = promisify(execFile)(process.execPath, ['-e', script], {
    env: { ...process.env, UWS_USE_FALLBACK: '1' },
  })
  const error = await t.throwsAsync(run)
  t.regex(
    (error as Error & { stderr: string }).stderr,
    /native binary did not load \(JavaScript fallback in use/,
  )
})
