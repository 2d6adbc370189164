/**
 * What the admin tests share: the admin app over a real Redis-backed core
 * (own key prefix per test), served by node:http on port 0, torn down with
 * the test; tokens of every kind; and a small fetch that keeps status, headers
 * and the parsed JSON body.
 */
import type { Server } from 'node:http'
import type { ExecutionContext } from 'ava'
import { createAdminApp, type Readiness } from '../../src/admin/app.js'
import { LiveSeries } from '../../src/admin/live-series.js'
import { createAdminServer } from '../../src/admin/server.js'
import { Tokens } from '../../src/auth/token.js'
import { createBrokerCore, type BrokerCore } from '../../src/broker/core.js'
import { defaults, type Config, type RedisTarget } from '../../src/config/defaults.js'
import { silentLogger, type Logger } from '../../src/log.js'
import { createAdminCounters, registerAdminMetrics } from '../../src/metrics/admin.js'
import { Registry, scrape, type MetricsText } from '../../src/metrics/index.js'
import { createRedisClients } from '../../src/redis/connect.js'
import { uniquePrefix } from '../helpers/redis.js'

export const SECRET = 'admin-test-secret'
export const USER = '55a07f2dee06c78e1357b0ad'

const tokens = new Tokens([SECRET])
const strangers = new Tokens(['another-secret'])

/** Tokens as snapper-producer, an operator, a browser and a stranger would hold them. */
export const TOKENS = {
  producer: tokens.sign({ id: 'prod-1' }),
  operator: tokens.sign({ name: 'snapper' }),
  consumer: tokens.sign({ userId: USER }),
  /** A consumer token that also carries `id`: still a consumer's. */
  consumerWithId: tokens.sign({ userId: USER, id: 'prod-1' }),
  /** A consumer token that also claims to be an operator's: still a consumer's. */
  operatorWithUserId: tokens.sign({ name: 'snapper', userId: USER }),
  wrongSecret: strangers.sign({ id: 'prod-1' }),
  expired: tokens.sign({ id: 'prod-1' }, -10),
} as const

export interface AdminHarness {
  readonly base: string
  /** The node:http server: its 'request' events come once the app has run a request up to its first await. */
  readonly server: Server
  readonly core: BrokerCore
  readonly config: Config
  readonly registry: Registry
  /** The dashboard's series: not started; a test samples it when it wants a point. */
  readonly series: LiveSeries
  /** The messages of a room's log, oldest first (XRANGE on the room's stream). */
  roomLog(room: string): Promise<string[]>
}

export interface HarnessOptions {
  readonly overrides?: Partial<Config>
  readonly readiness?: Readiness
  readonly logger?: Logger
  /** What /metrics answers; by default the harness registry's text. */
  readonly metrics?: (registry: Registry) => Promise<MetricsText>
}

export async function startAdminApp(
  t: ExecutionContext,
  redisAt: string | RedisTarget,
  options: HarnessOptions = {},
): Promise<AdminHarness> {
  const config: Config = {
    ...defaults,
    redisPrefix: uniquePrefix(),
    tokenSecrets: [SECRET],
    ...options.overrides,
  }
  const target: RedisTarget = typeof redisAt === 'string' ? { kind: 'standalone', url: redisAt } : redisAt
  const redis = createRedisClients(target, silentLogger)
  await redis.connect(5000)
  const core = createBrokerCore(config, redis, silentLogger)
  const counters = createAdminCounters()
  const registry = new Registry()
  registerAdminMetrics(registry, { core, counters })
  const series = new LiveSeries(() => core.stats.figures(config.nodeTtlMs), {
    intervalMs: 1000,
    windowSec: 60,
    onError: () => {},
  })
  const logger = options.logger ?? silentLogger
  const app = createAdminApp({
    config,
    core,
    tokens,
    logger,
    counters,
    readiness: options.readiness ?? (() => []),
    metrics: () => (options.metrics ?? scrape)(registry),
    series,
    gatewayPort: 7701,
  })
  const server = createAdminServer(app, config, { counters, logger })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
    await redis.quit()
  })
  return {
    base: `http://127.0.0.1:${port}`,
    server,
    core,
    config,
    registry,
    series,
    async roomLog(room) {
      const entries = await redis.commands.xrange(core.keys.room(room).log, '-', '+')
      return entries.map(([, fields]) => fields[1]!)
    },
  }
}

export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  /** The body parsed as JSON, or undefined when it is not JSON. */
  readonly json: unknown
}

/** fetch, with the body read and parsed; `token` goes in `Authorization: Bearer`. */
export async function call(
  url: string,
  init: {
    method?: string
    token?: string
    body?: unknown
    raw?: string | Buffer
    headers?: Record<string, string>
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...init.headers }
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`
  let body: string | Buffer | undefined = init.raw
  if (init.body !== undefined) {
    body = JSON.stringify(init.body)
    headers['content-type'] ??= 'application/json'
  }
  const res = await fetch(url, {
    method: init.method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    body,
    redirect: 'manual',
  })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, headers: res.headers, text, json }
}

/** The body of an admin error, as every refusal carries it. */
export const errorBody = (
  code: number,
  message: string,
  key: string,
  extra: Record<string, unknown> = {},
) => ({
  error: { code, message, data: { code: key, ...extra } },
})

/** The value of one sample in Prometheus text (`name` or `name{labels}`), or undefined. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1))
  }
  return undefined
}
