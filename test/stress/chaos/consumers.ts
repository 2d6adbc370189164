import { createRequire } from 'node:module'
import { now, pick, sleep } from './clock.js'
import type { Nodes, Slot } from './nodes.js'
import type { TimedEvent } from './timeline.js'

const require = createRequire(import.meta.url)

/** The part of snapper-consumer@1.3.6 the run uses (it ships no types). */
interface SnapperConsumer {
  url: string
  consumerId: string | null
  connected: boolean
  reconnectionTime: number
  connection: {
    port?: string
    transport?: { name: string; ws?: { _socket?: { destroy(): void } } }
    on(event: string, listener: (...args: unknown[]) => void): void
  } | null
  onopen: () => void
  onerror: (error: unknown) => void
  onmessage: (event: { type: string; data: { method?: string; params?: unknown; id?: unknown } }) => void
  connect(): unknown
  close(): void
}
const SnapperConsumerClass = require('snapper-consumer') as new (
  url: string,
  options: object,
) => SnapperConsumer

/** A message as a consumer got it: when, and from which life of which node. */
export interface Receipt {
  readonly text: string
  readonly at: number
  readonly slot: number
  readonly generation: number
}

/** A snapper-consumer that records what it receives, and its own timeline (opens, closes, joins). */
export class ChaosConsumer {
  readonly client: SnapperConsumer
  readonly received: Receipt[] = []
  readonly gaps: string[] = []
  readonly events: TimedEvent[] = []
  id = ''
  firstOpenAt = Infinity
  slot = -1
  generation = 0
  opens = 0

  constructor(
    readonly name: string,
    readonly userId: string,
    token: string,
    readonly isWebsocketOnly: boolean,
    nodes: Nodes,
    slot: Slot,
  ) {
    this.client = new SnapperConsumerClass(nodes.urlOf(slot), {
      path: '/websocket',
      token,
      ...(isWebsocketOnly && { transports: ['websocket'] }),
    })
    this.client.onopen = () => {
      this.client.reconnectionTime = 300 // its default waits 11-60 s
      const id = this.client.consumerId ?? ''
      if (this.id && id !== this.id) this.log(`consumer id changed from ${this.id} to ${id}`)
      this.id = id
      this.firstOpenAt = Math.min(this.firstOpenAt, now())
      this.opens++
      // The port this connection went to: the url may have changed since it began.
      this.slot = nodes.slots.findIndex(
        slot => String(slot.ports?.gateway) === String(this.client.connection?.port),
      )
      this.generation = nodes.slots[this.slot]!.generation
      this.log(`open on node ${this.slot}.${this.generation}`)
      this.client.connection?.on('close', reason => this.log(`closed: ${String(reason)}`))
    }
    this.client.onerror = () => {} // a refused or failed connect: it tries again by itself
    this.client.onmessage = event => {
      if (event.type === 'request' && event.data.method === 'publish') {
        for (const text of event.data.params as string[])
          this.received.push({ text, at: now(), slot: this.slot, generation: this.generation })
      } else if (event.type === 'notification' && event.data.method === 'gap') {
        this.gaps.push(JSON.stringify(event.data.params))
        this.log(`gap ${JSON.stringify(event.data.params)}`)
      }
    }
    this.client.connect()
  }

  log(text: string): void {
    this.events.push({ at: now(), text })
  }

  /** Destroys the TCP socket under the websocket: no close frame, as a network cut. */
  cut(): boolean {
    const socket = this.client.connection?.transport?.ws?._socket
    if (!this.client.connected || !socket) return false
    socket.destroy()
    this.log('socket destroyed')
    return true
  }

  /** Closes it for good: it does not reconnect. */
  close(): void {
    this.client.connect = () => this.client
    this.client.close()
  }
}

/**
 * Two consumers per user, spread over the nodes (the first of each websocket
 * only), once every one of them has opened (at most 20 s).
 */
export async function openConsumers(nodes: Nodes, seed: number, users: number): Promise<ChaosConsumer[]> {
  const signer = nodes.slots[0]!.producer!
  const consumers: ChaosConsumer[] = []
  for (let u = 0; u < users; u++) {
    const userId = `5${String(seed).padStart(6, '0')}${String(u).padStart(2, '0')}`.padEnd(24, 'b')
    for (let k = 0; k < 2; k++) {
      const token = signer.signAuth({ userId, exp: Math.floor(Date.now() / 1000) + 86_400 + k })
      const slot = nodes.slots[(u * 2 + k) % nodes.slots.length]!
      consumers.push(new ChaosConsumer(`c${u}.${k}`, userId, token, k === 0, nodes, slot))
    }
  }
  const deadline = now() + 20_000
  while (consumers.some(c => !c.id) && now() < deadline) await sleep(50)
  const missing = consumers.filter(c => !c.id)
  if (missing.length > 0) throw new Error(`consumers ${missing.map(c => c.name).join(', ')} never opened`)
  return consumers
}

/**
 * Where a consumer reconnects: any node up, as a load balancer would send
 * it, while the node it tries is not up. Returns the function that stops it.
 */
export function followNodesUp(
  consumers: readonly ChaosConsumer[],
  nodes: Nodes,
  draw: () => number,
): () => void {
  const homing = setInterval(() => {
    for (const consumer of consumers) {
      if (consumer.client.connected) continue
      const current = nodes.slots[nodes.slotOfUrl(consumer.client.url)]
      const up = nodes.up()
      if (current?.state !== 'up' && up.length > 0) consumer.client.url = nodes.urlOf(pick(up, draw))
    }
  }, 100)
  return () => clearInterval(homing)
}
