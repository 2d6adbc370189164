/**
 * Micro-benchmark: verifying a consumer token (HS256) with our verifier
 * (src/auth/token.ts) versus jsonwebtoken, the secret given as a string
 * (jsonwebtoken then tries it as a PEM public key first, and that throws, on
 * every call) or as a KeyObject made once.
 * `node dist/bench/micro/token-verify.js`
 */
import { createSecretKey } from 'node:crypto'
import jwt from 'jsonwebtoken'
import { Tokens } from '../../src/auth/token.js'

const secret = 'tokenSecretXXX'
const key = createSecretKey(Buffer.from(secret))
const token = jwt.sign({ exp: 4_102_444_800, userId: '55a07f2dee06c78e1357b0ad' }, secret, {
  algorithm: 'HS256',
  noTimestamp: true,
})

function rate(label: string, verify: () => unknown): void {
  for (let i = 0; i < 2000; i++) verify() // warm up the JIT
  const n = 20_000
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) verify()
  const us = Number(process.hrtime.bigint() - start) / 1000
  process.stdout.write(
    `${label.padEnd(28)} ${(us / n).toFixed(1).padStart(6)} µs/verify  ${Math.round(n / (us / 1e6))
      .toLocaleString('en')
      .padStart(8)}/s\n`,
  )
}

const tokens = new Tokens([secret])
rate('Tokens.verifyConsumer', () => tokens.verifyConsumer(token))
rate('jsonwebtoken, string secret', () => jwt.verify(token, secret, { algorithms: ['HS256'] }))
rate('jsonwebtoken, KeyObject', () => jwt.verify(token, key, { algorithms: ['HS256'] }))
