import { WebSocket } from 'ws'

type Frame = { id?: string; method?: string; params?: string[]; result?: unknown }

/** A raw Engine.IO 4 websocket consumer that answers pings and records the JSON-RPC it gets. */
export class RawConsumer {
  readonly frames: Frame[] = []
  readonly socket: WebSocket
  /** The Engine.IO open packet came: the session is ready (the websocket itself opens earlier). */
  isOpen = false
  closed = false
  #waiters = new Set<() => void>()

  constructor(port: number, token: string) {
    this.socket = new WebSocket(`ws://127.0.0.1:${port}/websocket/?EIO=4&transport=websocket&token=${token}`)
    this.socket.on('message', data => {
      const text = String(data)
      if (text.startsWith('0')) this.isOpen = true
      else if (text === '2') this.socket.send('3')
      else if (text.startsWith('4')) this.frames.push(JSON.parse(text.slice(1)) as Frame)
      for (const wake of this.#waiters) wake()
    })
    this.socket.on('close', () => {
      this.closed = true
      for (const wake of this.#waiters) wake()
    })
  }

  get batches(): { id: string; params: string[] }[] {
    return this.frames.filter(f => f.method === 'publish') as { id: string; params: string[] }[]
  }

  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once('error', reject)
      this.until(() => this.isOpen || this.closed).then(
        () => (this.isOpen ? resolve() : reject(new Error('closed before its open packet'))),
        reject,
      )
    })
  }

  send(value: unknown): void {
    this.sendText(JSON.stringify(value))
  }

  /** An Engine.IO message packet with this text, sent as it is. */
  sendText(text: string): void {
    this.socket.send(`4${text}`)
  }

  /** An echo round trip. */
  request(text: string): Promise<unknown> {
    const id = `q${this.frames.length}:${text}`
    this.send({ jsonrpc: '2.0', id, method: 'echo', params: [text] })
    return this.until(() => this.frames.some(f => f.id === id)).then(
      () => this.frames.find(f => f.id === id)?.result,
    )
  }

  ack(id: string): void {
    this.send({ jsonrpc: '2.0', id, result: 'OK' })
  }

  until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const wake = (): void => {
        if (!check()) return
        this.#waiters.delete(wake)
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(wake)
        reject(new Error('condition not met in time'))
      }, timeoutMs)
      this.#waiters.add(wake)
      wake()
    })
  }
}
