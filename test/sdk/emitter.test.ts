import test from 'ava'
import { Emitter } from '../../src/sdk/emitter.js'
import { SDK_ERRORS, SnapperError } from '../../src/sdk/errors.js'

interface Events {
  message: [text: string]
  error: [error: SnapperError]
}

class Source extends Emitter<Events> {
  deliver(text: string): void {
    this.emit('message', text)
  }
}

test("a listener's exception reaches the error listeners as a SnapperError (LISTENER); the other listeners still run", t => {
  const source = new Source()
  const seen: string[] = []
  const errors: SnapperError[] = []
  source.on('message', text => JSON.parse(text) as unknown)
  source.on('message', text => seen.push(text))
  source.on('error', error => errors.push(error))
  source.deliver('not json')
  t.deepEqual(seen, ['not json'])
  t.is(errors.length, 1)
  const [error] = errors
  t.true(error instanceof SnapperError)
  t.is(error!.code, SDK_ERRORS.LISTENER)
  t.regex(error!.message, /^a message listener threw: /)
  t.true(error!.cause instanceof SyntaxError)
})

test('what a listener throws that is not an Error is named in the message and kept as the cause', t => {
  const source = new Source()
  let received: SnapperError | undefined
  source.on('message', () => {
    throw 'plain text'
  })
  source.on('error', error => (received = error))
  source.deliver('x')
  t.is(received?.message, 'a message listener threw: plain text')
  t.is(received?.cause, 'plain text')
})
