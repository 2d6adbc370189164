/**
 * The repository's nginx.conf under Debian's default open-files limit (soft
 * 1024): each consumer holds two connections in nginx, so without
 * `worker_rlimit_nofile` a worker stops at about 500 consumers, whatever
 * `worker_connections` says (nginx warns at start). Real nginx, daemonized
 * for a moment on a free port. And its body limit in front of a real node:
 * a polling POST over maxPayloadBytes gets 413 through it, not 502, and no
 * response names nginx's or uWS's version. And of a browser's cookies it
 * passes on only the gateway's own, so that a site's cookies do not push a
 * handshake's head past the 4 KiB uWS always reads (README, Limits).
 */
import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test, { type ExecutionContext } from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { defaults } from '../../src/config/defaults.js'
import { newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { request } from '../helpers/engineio-harness.js'
import { startNginx } from '../helpers/nginx.js'
import { BIND_FAILED, freePort, PortTaken, startOnFreePorts } from '../helpers/ports.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find(path => spawnSync(path, ['-v']).status === 0)

test('nginx.conf lifts the open-files limit above worker_connections', async t => {
  if (!NGINX) throw new Error('nginx is not installed: apt-get install -y nginx-light')
  const dir = mkdtempSync(join(tmpdir(), 'snapper-nginx-limits-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const shipped = readFileSync(new URL('../../../nginx.conf', import.meta.url), 'utf8')
  const conf = join(dir, 'nginx.conf')
  const pidFile = join(dir, 'nginx.pid')
  const errorLog = join(dir, 'error.log')
  // The master checks worker_connections against the limit while it starts, before it daemonizes.
  const started = await startOnFreePorts(async () => {
    const port = await freePort()
    writeFileSync(conf, shipped.replace(/listen 80;/, `listen 127.0.0.1:${port};`))
    const run = spawnSync(
      'sh',
      [
        '-c',
        'ulimit -Sn 1024 && exec "$0" "$@"',
        NGINX,
        '-p',
        dir,
        '-c',
        conf,
        '-g',
        `pid ${pidFile}; error_log ${errorLog} warn;`,
      ],
      { encoding: 'utf8' },
    )
    if (run.status !== 0 && BIND_FAILED.test(run.stderr)) throw new PortTaken('nginx', port)
    return run
  })
  t.is(started.status, 0, started.stderr)
  process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGQUIT')
  t.notRegex(started.stderr + readFileSync(errorLog, 'utf8'), /exceed open file resource limit/)
})

let redis: RedisServer | undefined
test.before(async () => {
  redis = await startRedis()
})
test.after.always(() => redis?.stop())

test('a polling POST over maxPayloadBytes gets 413 through nginx; no version in the headers', async t => {
  const node = await startBroker(t, redis!.url) // the default maxPayloadBytes, which nginx.conf matches
  const nginx = await startNginx(node.ports.gateway, 1)
  t.teardown(() => nginx.stop())
  const token = new Tokens([TEST_SECRET]).sign({ userId: newUserId() })
  const base = `http://127.0.0.1:${nginx.port}/websocket/?EIO=4&transport=polling&token=${token}`
  const handshake = await request(base)
  t.is(handshake.status, 200)
  t.is(handshake.headers.server, 'nginx')
  t.is(handshake.headers.uwebsockets, undefined)
  const sid = (JSON.parse(handshake.text.slice(1)) as { sid: string }).sid
  const oversize = await request(`${base}&sid=${sid}`, {
    method: 'POST',
    body: `4${'x'.repeat(defaults.maxPayloadBytes)}`,
  })
  // nginx's own page: it refused the body itself. Had it passed the body on, the broker would answer
  // 413 and close mid-body, and nginx, still writing it, would answer 502 (Broken pipe) when it loses that race.
  t.is(oversize.status, 413)
  t.regex(oversize.text, /<title>413 Request Entity Too Large<\/title>/)
  t.is(oversize.headers.server, 'nginx')
})

/**
 * A stand-in gateway that records the headers nginx forwards (port 0: the
 * kernel picks a free one), behind the shipped nginx.conf; `url` is a
 * polling handshake through nginx.
 */
async function recordingGatewayBehindNginx(
  t: ExecutionContext,
): Promise<{ seen: IncomingHttpHeaders[]; url: string }> {
  const seen: IncomingHttpHeaders[] = []
  const gateway = createServer((req, res) => {
    seen.push(req.headers)
    res.end('ok')
  })
  gateway.listen(0, '127.0.0.1')
  await once(gateway, 'listening')
  t.teardown(() => gateway.close())
  const nginx = await startNginx((gateway.address() as { port: number }).port, 1)
  t.teardown(() => nginx.stop())
  return { seen, url: `http://127.0.0.1:${nginx.port}/websocket/?EIO=4&transport=polling&token=x` }
}

test("nginx passes on only the snapper.ws cookie: a site's big cookies stay out of the gateway's request head", async t => {
  const { seen, url } = await recordingGatewayBehindNginx(t)
  const siteCookies = `_ga=GA1.2.${'1'.repeat(40)}; session=${'s'.repeat(3000)}; prefs=${'p'.repeat(2000)}`
  const previous = 'snapper.ws=u1.aaaaaaaaaaaaaaaaaaaaaaaaaaaa'

  const withOurs = await request(url, { headers: { cookie: `${siteCookies}; ${previous}; theme=dark` } })
  const first = await request(url, { headers: { cookie: `${previous}; ${siteCookies}` } })
  const without = await request(url, { headers: { cookie: siteCookies } })
  // Not a consumer id: too long for one, or with a letter none has. Either would only fill the head.
  const huge = await request(url, { headers: { cookie: `snapper.ws=${'a'.repeat(5000)}` } })
  const odd = await request(url, { headers: { cookie: `snapper.ws=u1.${'a'.repeat(30)}%00; theme=dark` } })
  t.deepEqual(
    [withOurs, first, without, huge, odd].map(answer => answer.status),
    [200, 200, 200, 200, 200],
  )
  t.deepEqual(
    seen.map(headers => headers.cookie),
    [previous, previous, undefined, undefined, undefined],
  )
  // What is left of the head: well within the 4 KiB, with the 5 KB of site cookies gone.
  t.true(
    seen.every(headers => JSON.stringify(headers).length < 1024),
    JSON.stringify(seen),
  )
})

test("nginx does not pass on a page's Referer: a long page address stays out of the gateway's request head", async t => {
  const { seen, url } = await recordingGatewayBehindNginx(t)
  // A same-origin page sends its whole address (browsers cut it at 4,096 bytes), a search's state say.
  const referer = `https://app.example.com/projects/p1/search?filter=${'f'.repeat(3000)}`
  const answer = await request(url, { headers: { referer, origin: 'https://app.example.com' } })
  t.is(answer.status, 200)
  t.is(seen.length, 1)
  t.is(seen[0]!.referer, undefined)
  t.is(seen[0]!.origin, 'https://app.example.com') // what CORS needs still goes on
  t.true(JSON.stringify(seen[0]).length < 1024, JSON.stringify(seen[0]))
})
