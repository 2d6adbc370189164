/**
 * ingest: how many producer messages per second the broker accepts into
 * Redis, with one producer and with four. Each producer keeps 32 `publish`
 * requests of 50 messages (to 100 rooms, at random) in flight; a request's
 * answer says its messages are stored. No consumers: this is the write path.
 */
import { makeMessage, nowUs } from '../load/message.js'
import { Publisher } from '../load/publisher.js'
import { sleep, type RunContext, type Scenario } from '../lib/scenario.js'
import { seededRandom } from '../../test/helpers/seeded-random.js'

const WINDOW = 32
const BATCH = 50
const ROOMS = 100

async function produce(ctx: RunContext, producers: number, seconds: number): Promise<number> {
  const publishers = await Promise.all(
    Array.from({ length: producers }, (_, i) => Publisher.open(ctx.target, i)),
  )
  try {
    const deadline = Date.now() + seconds * 1000
    const startUs = nowUs()
    const accepted = await Promise.all(
      publishers.map(async (publisher, p) => {
        const random = seededRandom(p + 1)
        let count = 0
        const loop = async (): Promise<void> => {
          while (Date.now() < deadline) {
            const pairs: (readonly [string, string])[] = []
            for (let i = 0; i < BATCH; i++)
              pairs.push([`ingest${Math.floor(random() * ROOMS)}`, makeMessage(1, nowUs(), 100)])
            // Not `count += await …`: that reads `count` before the await and loses the other loops' adds.
            const stored = await publisher.publishStored(pairs)
            count += stored
          }
        }
        await Promise.all(Array.from({ length: WINDOW }, loop))
        return count
      }),
    )
    const total = accepted.reduce((sum, n) => sum + n, 0)
    return Math.round(total / ((nowUs() - startUs) / 1e6))
  } finally {
    for (const publisher of publishers) publisher.close()
  }
}

export const ingest: Scenario = {
  name: 'ingest',
  title: 'ingest: producer messages stored per second, 1 and 4 producers',
  targets: ['snapper'],
  noise: true,
  headline: 'oneProducer',
  metrics: [
    { key: 'oneProducer', label: '1 producer', unit: 'msgs/s', better: 'higher' },
    { key: 'fourProducers', label: '4 producers', unit: 'msgs/s', better: 'higher' },
  ],
  async run(ctx) {
    const seconds = ctx.smoke ? 0.3 : 5
    ctx.phase('1 producer')
    await ctx.startMeasuring()
    const oneProducer = await produce(ctx, 1, seconds)
    await sleep(200)
    ctx.phase('4 producers')
    const fourProducers = await produce(ctx, 4, seconds)
    const cpu = await ctx.stopMeasuring()
    return { oneProducer, fourProducers, ...cpu }
  },
  checks(medians) {
    const snapper = medians.snapper
    if (!snapper) return []
    return [
      {
        label: 'ingest: messages are accepted',
        ok: snapper.oneProducer! > 0 && snapper.fourProducers! > 0,
        detail: `${snapper.oneProducer}/s, ${snapper.fourProducers}/s`,
      },
    ]
  },
}
