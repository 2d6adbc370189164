/** The package's name and version (package.json), as /stats and the CLI report them. */
import { readFileSync } from 'node:fs'

export const PACKAGE: { readonly name: string; readonly version: string } = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as { name: string; version: string }
