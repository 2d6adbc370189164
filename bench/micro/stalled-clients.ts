/**
 * The stalled consumers of bench/micro/stalled-consumers.ts, in a process of their own: in
 * `echo` mode they send 50,000 requests a second at N = 1,000, which would otherwise hold up
 * the bench's reader and producer. Forked with the gateway's port and the mode; `connect`
 * opens one websocket consumer per token, `stall` pauses their sockets (and starts the echo
 * requests), `report` says how they closed, `stop` ends them and the process.
 */
import { RawConsumer } from '../../test/helpers/raw-consumer.js'

export type ClientsRequest =
  | { readonly type: 'connect'; readonly tokens: readonly string[] }
  | { readonly type: 'stall' }
  | { readonly type: 'report' }
  | { readonly type: 'stop' }
export type ClientsReply =
  | { readonly type: 'connected' }
  | { readonly type: 'stalled' }
  | { readonly type: 'report'; readonly closed: number; readonly closes: Record<string, number> }

const [port = 0, mode = 'room'] = process.argv.slice(2).map((arg, i) => (i === 0 ? Number(arg) : arg)) as [
  number?,
  string?,
]
const tell = (reply: ClientsReply): void => void process.send?.(reply)
const consumers: RawConsumer[] = []
/** How the sockets closed, by websocket close code and reason. */
const closes: Record<string, number> = {}
let asker: NodeJS.Timeout | undefined

async function connect(tokens: readonly string[]): Promise<void> {
  for (let from = 0; from < tokens.length; from += 100) {
    const some = tokens.slice(from, from + 100).map(token => {
      const consumer = new RawConsumer(port, token)
      consumer.socket.on('close', (code, reason) => {
        const key = `${code} ${String(reason) || '-'}`
        closes[key] = (closes[key] ?? 0) + 1
      })
      return consumer
    })
    await Promise.all(some.map(consumer => consumer.opened()))
    consumers.push(...some)
  }
}

function stall(): void {
  for (const consumer of consumers)
    (consumer.socket as unknown as { _socket: { pause(): void } })._socket.pause()
  if (mode !== 'echo') return
  // 200 KB of echo requests a second per consumer, within consumerMaxInputBytesPerSec.
  const params = ['y'.repeat(4000)]
  asker = setInterval(() => {
    for (const consumer of consumers)
      if (!consumer.closed)
        for (let i = 0; i < 50; i++) consumer.send({ jsonrpc: '2.0', id: i + 1, method: 'echo', params })
  }, 1000)
}

process.on('message', (request: ClientsRequest) => {
  if (request.type === 'connect')
    connect(request.tokens).then(
      () => tell({ type: 'connected' }),
      (err: unknown) => {
        console.error('stalled consumers could not connect', err)
        process.exit(1)
      },
    )
  else if (request.type === 'stall') {
    stall()
    tell({ type: 'stalled' })
  } else if (request.type === 'report')
    tell({ type: 'report', closed: consumers.filter(consumer => consumer.closed).length, closes })
  else {
    clearInterval(asker)
    for (const consumer of consumers) consumer.socket.terminate()
    process.exit(0)
  }
})
