import { createHash } from 'node:crypto'
import { Command, ReplyError, type Cluster, type Redis } from 'ioredis'
import type { Arg } from './scripts.js'

/**
 * A Lua script whose calls are written straight into their request, in the
 * protocol's own form (RESP), as the caller produces its keys and arguments.
 *
 * ioredis copies a script call's arguments into arrays three times (the
 * caller's spread, the script's `[sha, ...args]`, the command's `flat()`),
 * converts each, and only then writes the request: for room_append-4n.lua,
 * whose calls carry 8 arguments per message, that was the largest allocation
 * of the unicast path (docs/performance.md, section 1, item 17). Here the
 * caller writes each argument once into the request's text.
 *
 * A call goes as EVALSHA where the script has answered before, and as EVAL
 * (with the source) on a connection where it has not: its first calls, and
 * after Redis answered NOSCRIPT there (its script cache was emptied). Only an
 * answer says the script is there: an EVAL refused before it ran (a redirect
 * while a slot moves, TRYAGAIN, CLUSTERDOWN, an ACL) loaded nothing, and an
 * EVALSHA sent behind it would fail NOSCRIPT. Unlike ioredis' scripts, a call answered NOSCRIPT is not sent
 * again here: it did not run, and sent again it would run after calls sent
 * later, which the append numbering must not see (room_append-4n.lua,
 * "Exactly once"). It fails; on a Cluster, OrderedAppends sends it again in
 * order (NOSCRIPT is a failure that passes); a read, in any order, is sent
 * again at once (RoomLog).
 */
export class ScriptRequests {
  readonly #lua: string
  readonly #sha: string
  /** The connections (sockets) where the script has answered: EVALSHA is enough there. */
  readonly #loadedOn = new WeakSet<object>()
  readonly #writer = new RespWriter()

  constructor(lua: string) {
    this.#lua = lua
    this.#sha = createHash('sha1').update(lua).digest('hex')
  }

  /**
   * Starts a call with `keys` keys, then `args` arguments: write exactly
   * that many with `key` and `arg`, in order, then `end()` it. One request
   * is written at a time (synchronously); `end()` hands it over.
   */
  start(keys: number, args: number): ScriptRequestWriter {
    this.#writer.begin(keys, args, this.#sha)
    return this.#writer
  }

  /** Writes and sends a call of these keys and arguments (for a script of fixed arity). */
  call(
    client: Redis | Cluster,
    keys: readonly string[],
    args: readonly Arg[],
    options?: ScriptCallOptions,
  ): Promise<unknown> {
    const request = this.start(keys.length, args.length)
    for (const key of keys) request.key(key)
    for (const arg of args) request.arg(arg)
    return this.send(client, request.end(), options)
  }

  /**
   * Sends a request made by `start`…`end`: on a Cluster to the master of
   * its first key's slot. Resolves with the script's reply.
   */
  send(client: Redis | Cluster, request: ScriptRequest, options?: ScriptCallOptions): Promise<unknown> {
    return client.sendCommand(this.command(request, options)) as Promise<unknown>
  }

  /** The command that sends `request` once, for a pipeline (`pipeline.sendCommand`); `send` for the rest. */
  command(request: ScriptRequest, options?: ScriptCallOptions): Command {
    return options?.failsAtClusterDown === true
      ? new FailFastScriptCommand(request, this)
      : new ScriptCommand(request, this)
  }

  /** The script answered on `socket`: EVALSHA there next. */
  confirm(socket: object): void {
    this.#loadedOn.add(socket)
  }

  /** Redis said NOSCRIPT on `socket` (its script cache was emptied): EVAL there next. */
  forget(socket: object): void {
    this.#loadedOn.delete(socket)
  }

  /** Whether the script has answered on `socket`: then EVALSHA is written there. */
  isLoadedOn(socket: object): boolean {
    return this.#loadedOn.has(socket)
  }

  /** The bytes to write on `socket`: EVALSHA where the script answered before, else EVAL with its source. */
  writable(request: ScriptRequest, socket: object): string {
    if (this.#loadedOn.has(socket)) return request.text
    const head = `*${request.count}\r\n$4\r\neval\r\n$${Buffer.byteLength(this.#lua)}\r\n${this.#lua}\r\n`
    return head + request.text.slice(request.headLength)
  }
}

export interface ScriptCallOptions {
  /**
   * On a Cluster, fail with Redis's `CLUSTERDOWN` reply (a ReplyError) when
   * the call's first write is answered so, instead of ioredis' retries
   * (`retryDelayOnClusterDown` 100 ms, up to `maxRedirections` 16 times,
   * each after a slot map refresh: 1.7 s unloaded, seconds on a loaded
   * machine). For a caller that can answer its client at once rather than
   * make it wait: a consumer handshake (docs/RELIABILITY.md, "A Redis
   * Cluster that is down"). Such a failure says the script did not run
   * (isRefusedUnrun): a call written more than once (after a redirect, a
   * lost connection) is left to ioredis' retries.
   */
  readonly failsAtClusterDown?: boolean
}

/**
 * Whether a call made with `failsAtClusterDown` failed without running: its
 * one write was answered `CLUSTERDOWN` (ioredis' own give-up says "Too many
 * Cluster redirections", and its earlier tries may have been lost replies).
 */
export function isRefusedUnrun(err: unknown): boolean {
  return err instanceof ReplyError && CLUSTER_DOWN.test((err as Error).message)
}

const CLUSTER_DOWN = /^CLUSTERDOWN /

/** A whole EVALSHA request, written once; sent again as it is (after a reconnect, a redirect). */
export interface ScriptRequest {
  readonly text: string
  /** Items of the RESP array: EVALSHA, the sha, the number of keys, keys, arguments. */
  readonly count: number
  /** Length of the array's head, EVALSHA and the sha: what EVAL replaces. */
  readonly headLength: number
  /** Its first key: on a Cluster, its slot says where the request goes. */
  readonly firstKey: string
  /** The connection it was last written to. */
  socket?: object
}

export interface ScriptRequestWriter {
  key(key: string): this
  arg(arg: Arg): this
  end(): ScriptRequest
}

/** The one command object ioredis needs to send a request and settle its reply. */
class ScriptCommand extends Command {
  readonly #request: ScriptRequest
  readonly #script: ScriptRequests
  /** How many times it was written: once, a CLUSTERDOWN reply says it did not run. */
  #writes = 0
  /** Whether its answer confirms the script on the connection it came from (it was written as EVAL). */
  #confirms = false

  constructor(request: ScriptRequest, script: ScriptRequests) {
    super('evalsha', [], { replyEncoding: 'utf8' }) // no arguments here: the request holds them, encoded
    this.#request = request
    this.#script = script
    const reject = this.reject
    this.reject = (err: Error): void => {
      if (isNoScript(err) && request.socket) script.forget(request.socket)
      reject(err)
    }
  }

  /** Whether it was written once only: then a CLUSTERDOWN reply says it did not run. */
  get isWrittenOnce(): boolean {
    return this.#writes === 1
  }

  override getKeys(): string[] {
    return [this.#request.firstKey]
  }

  override toWritable(socket: object): string {
    this.#writes++
    this.#request.socket = socket
    if (!this.#confirms && !this.#script.isLoadedOn(socket)) {
      // Only EVAL writes pay for this closure: the answer comes from the connection written last.
      this.#confirms = true
      const resolve = this.resolve
      this.resolve = (value: unknown): void => {
        this.#script.confirm(this.#request.socket!)
        resolve(value)
      }
    }
    return this.#script.writable(this.#request, socket)
  }
}

/**
 * A ScriptCommand whose CLUSTERDOWN reply to its first write rejects it at once
 * (ScriptCallOptions.failsAtClusterDown). ioredis' Cluster replaces a command's
 * `reject` with its redirect handler, once, reading the one before to call
 * when it gives up; an accessor on this prototype (not on each command, which
 * cost about 1.4 KB of a node's memory per connection in the connect storm)
 * keeps both and picks. Command's constructor sets `reject` before this
 * class's fields could exist: plain properties, set through the accessor.
 */
class FailFastScriptCommand extends ScriptCommand {
  /** `reject` as Command and ScriptCommand set it: settles the call. */
  declare private settle: (err: Error) => void
  /** The Cluster's redirect handler, once it has set one. */
  declare private redirect: ((err: Error) => void) | undefined
  /** Set once this constructor has run: a `reject` set after it is the Cluster's. */
  declare private hasConstructed: boolean

  // @ts-expect-error: an accessor over Command's `reject` property (see above)
  override get reject(): (err: Error) => void {
    return this.redirect === undefined ? this.settle : this.rejectPastClusterDown
  }

  override set reject(handler: (err: Error) => void) {
    // Command's and ScriptCommand's constructors set `settle`; the Cluster, later, its handler.
    if (!this.hasConstructed) this.settle = handler
    else this.redirect = handler
  }

  constructor(request: ScriptRequest, script: ScriptRequests) {
    super(request, script)
    this.hasConstructed = true
  }

  private rejectPastClusterDown(this: FailFastScriptCommand, err: Error): void {
    if (this.isWrittenOnce && isRefusedUnrun(err)) this.settle(err)
    else this.redirect!.call(this, err)
  }
}

/** Redis answered NOSCRIPT: the call did not run. */
export function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT')
}

/** Writes one request at a time as text (one string concatenated as it goes: cheaper than writing a buffer per argument). */
class RespWriter implements ScriptRequestWriter {
  #text = ''
  #count = 0
  #headLength = 0
  #left = 0
  #firstKey: string | undefined

  begin(keys: number, args: number, sha: string): void {
    this.#count = 3 + keys + args
    this.#left = keys + args
    this.#firstKey = undefined
    this.#text = `*${this.#count}\r\n$7\r\nevalsha\r\n$40\r\n${sha}\r\n`
    this.#headLength = this.#text.length
    this.#text += `$${String(keys).length}\r\n${keys}\r\n`
  }

  key(key: string): this {
    this.#firstKey ??= key
    return this.arg(key)
  }

  arg(arg: Arg): this {
    if (this.#left-- <= 0) throw new Error('a script request got more arguments than it was started with')
    const text = typeof arg === 'string' ? arg : String(arg)
    this.#text += '$' + Buffer.byteLength(text) + '\r\n' + text + '\r\n'
    return this
  }

  end(): ScriptRequest {
    const text = this.#text
    this.#text = ''
    if (this.#left !== 0) {
      this.#left = 0
      throw new Error('a script request got fewer arguments than it was started with')
    }
    return { text, count: this.#count, headLength: this.#headLength, firstKey: this.#firstKey ?? '' }
  }
}
