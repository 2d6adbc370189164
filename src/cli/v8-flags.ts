/**
 * A larger young generation: a delivery's short-lived objects die young instead
 * of being copied (bench unicast: broker CPU -20 %). The bench runs Snapper with
 * these too; the operator's own NODE_OPTIONS still apply.
 */
export const WORKER_V8_FLAGS: readonly string[] = ['--max-semi-space-size=64']
