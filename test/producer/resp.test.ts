import test from 'ava'
import fc from 'fast-check'
import { encodeBulk, isFramingError, RespDecoder } from '../../src/producer/resp.js'
import { docVectors, wireText } from '../helpers/doc-vectors.js'

const MAX = 1 << 20

/** Everything a decoder yields for these chunks: payloads as text, then an error code if one stopped it. */
function decodeChunks(chunks: readonly Buffer[], maxFrameBytes = MAX): (string | { error: string })[] {
  const decoder = new RespDecoder(maxFrameBytes)
  const out: (string | { error: string })[] = []
  for (const chunk of chunks) {
    decoder.push(chunk)
    for (let item = decoder.next(); item !== undefined; item = decoder.next()) {
      if (isFramingError(item)) {
        out.push({ error: item.code })
        return out
      }
      out.push(item.toString())
    }
  }
  return out
}

/** Whole, byte by byte, and split in two at every byte. */
const anySplit = test.macro({
  exec(t, bytes: Buffer, expected: (string | { error: string })[]) {
    t.deepEqual(decodeChunks([bytes]), expected, 'whole')
    const single = Array.from(bytes, byte => Buffer.from([byte]))
    t.deepEqual(decodeChunks(single), expected, 'byte by byte')
    for (let cut = 0; cut <= bytes.length; cut++)
      t.deepEqual(decodeChunks([bytes.subarray(0, cut), bytes.subarray(cut)]), expected, `cut ${cut}`)
  },
  title: (title = '') => `${title}: whole, byte by byte, split at every byte`,
})

const publishUtf8 = '{"jsonrpc":"2.0","method":"publish","params":[["ré","任务😀\u2028"]]}'

// docs/producer-protocol.md §2: a title, the wire, the payloads, the framing error that stops the stream.
for (const [title, wire, payloads, error] of docVectors('producer-protocol', 'resp-frames')) {
  const expected: (string | { error: string })[] = (payloads as unknown[]).map(payload =>
    typeof payload === 'string' ? payload : JSON.stringify(payload),
  )
  if (error !== undefined) expected.push({ error: error as string })
  test(String(title), anySplit, Buffer.from(wireText(wire)), expected)
}

test('the error is sticky: later input is not read', t => {
  const decoder = new RespDecoder(MAX)
  decoder.push(Buffer.from('+OK\r\n'))
  t.like(decoder.next(), { code: 'BAD_FRAMING' })
  decoder.push(Buffer.from('$2\r\n{}\r\n'))
  t.like(decoder.next(), { code: 'BAD_FRAMING' })
  t.is(decoder.bufferedBytes, 0)
})

test('the size limit fires from the header alone, before any body byte', t => {
  const decoder = new RespDecoder(1000)
  decoder.push(Buffer.from('$100')) // not over yet
  t.is(decoder.next(), undefined)
  decoder.push(Buffer.from('1'))
  t.like(decoder.next(), { code: 'FRAME_TOO_LARGE' })
  // The default limit, with a huge header: refused at its 8th digit, no CRLF needed.
  const big = new RespDecoder(MAX)
  big.push(Buffer.from('$99999999999999999999'))
  t.like(big.next(), { code: 'FRAME_TOO_LARGE' })
})

test('a frame of exactly the limit passes, one byte more does not', t => {
  const body = 'x'.repeat(1000)
  t.deepEqual(decodeChunks([Buffer.from(`$1000\r\n${body}\r\n`)], 1000), [body])
  t.deepEqual(decodeChunks([Buffer.from(`$1001\r\n${body}x\r\n`)], 1000), [{ error: 'FRAME_TOO_LARGE' }])
})

test('a 1 MiB frame in 64 KiB chunks is assembled once, and buffered bytes are counted', t => {
  const body = Buffer.alloc(MAX, 0x61)
  const bytes = Buffer.concat([Buffer.from(`$${MAX}\r\n`), body, Buffer.from('\r\n$2\r\n{}\r\n')])
  const decoder = new RespDecoder(MAX)
  const frames: Buffer[] = []
  for (let at = 0; at < bytes.length; at += 65536) {
    decoder.push(bytes.subarray(at, at + 65536))
    for (let item = decoder.next(); item !== undefined; item = decoder.next()) {
      if (isFramingError(item)) return t.fail(item.detail)
      frames.push(item)
    }
    if (frames.length === 0)
      t.is(decoder.bufferedBytes, Math.min(at + 65536, bytes.length) - `$${MAX}\r\n`.length)
  }
  t.is(frames.length, 2)
  t.true(frames[0]!.equals(body))
  t.is(frames[1]!.toString(), '{}')
  t.is(decoder.bufferedBytes, 0)
})

test('encodeBulk counts UTF-8 bytes: the $71 vector', t => {
  t.is(encodeBulk(publishUtf8), `$71\r\n${publishUtf8}\r\n`)
  t.is(Buffer.byteLength(encodeBulk(publishUtf8)), 78)
  t.is(encodeBulk(''), '$0\r\n\r\n')
})

test('arbitrary bytes never throw: they yield frames or an error value', t => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.nat(300),
      fc.integer({ min: 0, max: 64 }),
      (bytes, cut, max) => {
        const buffer = Buffer.from(bytes)
        const decoder = new RespDecoder(max)
        decoder.push(buffer.subarray(0, cut))
        decoder.push(buffer.subarray(cut))
        for (let item = decoder.next(), n = 0; item !== undefined; item = decoder.next(), n++) {
          if (isFramingError(item)) return
          if (n > bytes.length) throw new Error('more frames than bytes')
        }
      },
    ),
    { numRuns: 5000 },
  )
  t.pass()
})

test('arbitrary bytes after a "$" header never throw either', t => {
  const header = fc.oneof(fc.constant('$'), fc.constant('$1'), fc.constant('$12\r'), fc.constant('$3\r\n'))
  fc.assert(
    fc.property(header, fc.uint8Array({ maxLength: 40 }), (start, bytes) => {
      decodeChunks([Buffer.from(start), Buffer.from(bytes)], 64)
    }),
    { numRuns: 3000 },
  )
  t.pass()
})

test('any payloads, encoded and cut anywhere, decode to themselves', t => {
  fc.assert(
    fc.property(
      fc.array(fc.string({ unit: 'binary', maxLength: 80 }), { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      (payloads, cuts) => {
        const bytes = Buffer.from(payloads.map(encodeBulk).join(''))
        const points = [...new Set(cuts.map(cut => cut % (bytes.length + 1)))].sort((a, b) => a - b)
        const chunks = [0, ...points].map((from, i) => bytes.subarray(from, points[i] ?? bytes.length))
        const decoded = decodeChunks(chunks)
        // Lone surrogates do not survive UTF-8; compare with what encoding them gives.
        const expected = payloads.map(payload => Buffer.from(payload).toString())
        if (JSON.stringify(decoded) !== JSON.stringify(expected))
          throw new Error(`${JSON.stringify(decoded)}`)
      },
    ),
    { numRuns: 2000 },
  )
  t.pass()
})
