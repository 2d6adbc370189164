/**
 * codecs: the SDK's delivery formats against the original's, on the fan-out
 * and unicast shapes: bytes on the wire per delivery and deliveries per
 * second for the original frames (`legacy`), `codec=json` and `codec=msgpack`,
 * each with and without permessage-deflate. One Snapper with `wsCompression`
 * on: a consumer that does not offer deflate gets plain frames, so each
 * variant is the consumers' choice. Messages look like real ones: JSON text,
 * which a JSON frame escapes and a msgpack frame carries as it is.
 */
import { nowUs } from '../load/message.js'
import { Publisher } from '../load/publisher.js'
import {
  connectUsers,
  joinRoom,
  lossOf,
  makeUsers,
  type MetricDef,
  publishFlatOut,
  type RunContext,
  type Scenario,
  snapperChecks,
  waitForDeliveries,
  warmUp,
} from '../lib/scenario.js'
import type { BenchUser } from '../servers/targets.js'
import { seededRandom } from '../../test/helpers/seeded-random.js'

interface Variant {
  readonly name: string
  readonly codec?: 'json' | 'msgpack'
  readonly deflate: boolean
}

const VARIANTS: readonly Variant[] = [
  { name: 'legacy', deflate: false },
  { name: 'json', codec: 'json', deflate: false },
  { name: 'msgpack', codec: 'msgpack', deflate: false },
  { name: 'legacy+deflate', deflate: true },
  { name: 'json+deflate', codec: 'json', deflate: true },
  { name: 'msgpack+deflate', codec: 'msgpack', deflate: true },
]

const SHAPES = ['fanout', 'unicast'] as const
type Shape = (typeof SHAPES)[number]

const key = (shape: Shape, variant: Variant, what: 'dps' | 'bytes'): string =>
  `${shape} ${variant.name} ${what}`

const METRICS: MetricDef[] = [
  ...SHAPES.flatMap(shape =>
    VARIANTS.flatMap((variant): MetricDef[] => [
      { key: key(shape, variant, 'dps'), label: `${shape} ${variant.name}`, unit: '/s', better: 'higher' },
      {
        key: key(shape, variant, 'bytes'),
        label: `${shape} ${variant.name} wire`,
        unit: 'B/delivery',
        better: 'lower',
        digits: 1,
      },
    ]),
  ),
  { key: 'lost', label: 'lost (all variants)', unit: '', better: 'lower' },
  { key: 'dups', label: 'dups (all variants)', unit: '', better: 'lower' },
]

/** Text that deflate cannot shrink much (no repeats within a message), the same in every run. */
const NOISE = (() => {
  const random = seededRandom(1)
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 '
  return Array.from({ length: 4096 }, () => alphabet[Math.floor(random() * alphabet.length)]).join('')
})()

/** A message as an application would publish it: `<seq> <sent µs> ` then a JSON event of about `bytes`. */
function jsonMessage(seq: number, sentUs: number, bytes: number): string {
  const head = `${seq} ${sentUs} `
  const at = (seq * 97) % 2048
  const title = NOISE.slice(at, at + Math.max(0, bytes - head.length - 80))
  return `${head}{"e":":change:task","d":{"_id":"51762b8f78cfa9f357000011","title":"${title}","done":false}}`
}

/** One variant of one shape: fresh consumers, published flat out, counted, then closed. */
async function measure(ctx: RunContext, shape: Shape, variant: Variant): Promise<Record<string, number>> {
  const consumers = shape === 'fanout' ? (ctx.smoke ? 10 : 200) : ctx.smoke ? 20 : 2000
  const messages = shape === 'fanout' ? (ctx.smoke ? 50 : 1000) : ctx.smoke ? 100 : 10_000
  const room = `codecs-${shape}-${variant.name}`
  const users: BenchUser[] = makeUsers(consumers, shape === 'fanout' ? [room] : []).map(user => ({
    ...user,
    ...(variant.codec && { codec: variant.codec }),
    deflate: variant.deflate,
  }))
  ctx.phase(`${shape} ${variant.name}`)
  await connectUsers(ctx, users)
  const publisher = await Publisher.open(ctx.target)
  try {
    const rooms = shape === 'fanout' ? [room] : users.map(user => `user${user.userId}`)
    if (shape === 'fanout') await joinRoom(ctx, publisher, room, users)
    await warmUp(ctx, publisher, rooms, consumers)
    const random = seededRandom(7)
    const seqs = new Int32Array(rooms.length)
    const startUs = nowUs()
    await publishFlatOut(publisher, messages, i => {
      const at = shape === 'fanout' ? 0 : Math.floor(random() * rooms.length)
      return [rooms[at]!, jsonMessage(shape === 'fanout' ? i + 1 : ++seqs[at]!, nowUs(), 200)]
    })
    const expected = shape === 'fanout' ? consumers * messages : messages
    const report = await waitForDeliveries(ctx, expected)
    const delivered = report.received - report.dups
    return {
      [key(shape, variant, 'dps')]: Math.round(delivered / ((report.lastAt - startUs) / 1e6)),
      [key(shape, variant, 'bytes')]: Math.round((10 * report.wireBytes) / Math.max(1, delivered)) / 10,
      ...lossOf(report, expected),
    }
  } finally {
    publisher.close()
    await ctx.pool.close()
  }
}

export const codecs: Scenario = {
  name: 'codecs',
  title: 'codecs: bytes on the wire and deliveries/s, legacy vs json vs msgpack, with and without deflate',
  targets: ['snapper'],
  noise: false,
  headline: key('fanout', VARIANTS[2]!, 'dps'),
  metrics: METRICS,
  snapperConfig: { wsCompression: true },
  async run(ctx) {
    await ctx.startMeasuring()
    const metrics: Record<string, number> = { lost: 0, dups: 0 }
    for (const shape of SHAPES)
      for (const variant of VARIANTS) {
        const { lost, dups, ...measured } = await measure(ctx, shape, variant)
        Object.assign(metrics, measured, { lost: metrics.lost! + lost!, dups: metrics.dups! + dups! })
      }
    return { ...metrics, ...(await ctx.stopMeasuring()) }
  },
  checks: (medians, { smoke }) =>
    snapperChecks('codecs', medians, smoke, snapper => {
      const bytes = (shape: Shape, name: string): number =>
        snapper[
          key(
            shape,
            VARIANTS.find(v => v.name === name)!,
            'bytes',
          )
        ]!
      return [
        {
          label: 'codecs: msgpack sends fewer bytes than json (fan-out)',
          ok: bytes('fanout', 'msgpack') < bytes('fanout', 'json'),
          detail: `${bytes('fanout', 'msgpack')} vs ${bytes('fanout', 'json')} B/delivery`,
        },
      ]
    }),
}
