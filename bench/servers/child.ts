/**
 * The IPC contract between the bench and a server it runs in a child process
 * (snapper node, Socket.IO peer, uWS ceiling): the child says `ready` with
 * its ports; the bench may ask for a GC (before reading RSS) and for a stop.
 */
export type ToChild = { readonly type: 'gc' } | { readonly type: 'stop' }

export type FromChild =
  | { readonly type: 'ready'; readonly gatewayPort: number; readonly producerPort: number }
  | { readonly type: 'gc-done' }

/** Options every server child gets in `BENCH_SERVER` (JSON). */
export interface ServerOptions {
  readonly redisUrl: string
  readonly secret: string
  /** Which server of the target this is, 0-based (N workers: 0 … N-1). */
  readonly index: number
  readonly prefix: string
}

export function serverOptions(): ServerOptions {
  const text = process.env.BENCH_SERVER
  if (!text) throw new Error('BENCH_SERVER is not set: this file is started by the bench runner')
  return JSON.parse(text) as ServerOptions
}

/** Wires the IPC channel: answers `gc`, runs `stop` then exits. */
export function serveChild(
  ready: { gatewayPort: number; producerPort: number },
  stop: () => Promise<void>,
): void {
  const send = (message: FromChild): void => {
    process.send?.(message)
  }
  process.on('message', (message: ToChild) => {
    if (message.type === 'gc') {
      ;(globalThis as { gc?: () => void }).gc?.()
      send({ type: 'gc-done' })
    } else if (message.type === 'stop') {
      stop().then(
        () => process.exit(0),
        (err: unknown) => {
          process.stderr.write(`bench server stop failed: ${String(err)}\n`)
          process.exit(1)
        },
      )
    }
  })
  // The bench went away without a stop: do not linger.
  process.on('disconnect', () => process.exit(0))
  send({ type: 'ready', ...ready })
}
