import { createRequire } from 'node:module'
import type * as uWSTypes from 'uWebSockets.js'

/** The uWebSockets.js module, as its type declarations describe it. */
export type Uws = typeof uWSTypes

const require = createRequire(import.meta.url)
let native: Uws | undefined

/**
 * Throws unless `module` is the native uWebSockets.js binary. When the binary
 * does not load (another Node ABI, a missing file, or env UWS_USE_FALLBACK=1),
 * this fork silently falls back to a slow JavaScript server that lacks most of
 * the API; running on it would be a surprise in production, so we refuse.
 */
export function assertNativeUws(module: unknown): asserts module is Uws {
  const candidate = module as Partial<Uws> | null | undefined
  const isNative =
    typeof candidate?.getParts === 'function' &&
    typeof candidate.App === 'function' &&
    String(candidate.App).includes('[native code]')
  if (!isNative)
    throw new Error(
      'uWebSockets.js native binary did not load (JavaScript fallback in use: check UWS_USE_FALLBACK ' +
        `and that a binary exists for ${process.platform}-${process.arch} Node ABI ${process.versions.modules})`,
    )
}

/** uWebSockets.js, checked to be native once; everything in the gateway gets it from here. */
export function loadUws(): Uws {
  if (native === undefined) {
    const module: unknown = require('uWebSockets.js')
    assertNativeUws(module)
    native = module
  }
  return native
}
