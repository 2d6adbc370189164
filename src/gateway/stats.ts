import { createHash } from 'node:crypto'
import { freemem, networkInterfaces, totalmem } from 'node:os'
import type { BrokerCore } from '../broker/core.js'
import type { BrokerNode } from '../broker/node.js'
import { PACKAGE } from '../package.js'

const addresses = Object.values(networkInterfaces())
  .flat()
  .flatMap(address => (address ? [address.address] : []))

/** The original's server id: a hash of this host's addresses. */
const serverId = createHash('md5').update(JSON.stringify(addresses)).digest('hex')

const megabytes = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(2)} MB`

/**
 * The body of `GET /stats`: the original's fields (`server`, `version`, `net`,
 * `serverId`, `mem`, `stats.total`, `stats.current`) plus `stats.online` and,
 * when this process runs a node, that node's own figures. Without a node (the
 * admin app in a cluster's primary) the totals lag by at most statsFlushMs.
 */
export async function statsBody(
  core: BrokerCore,
  node: BrokerNode | undefined,
  nodeTtlMs: number,
): Promise<unknown> {
  await node?.flushStats() // this node's own counts are then exact; other nodes' lag by at most statsFlushMs
  const stats = await core.stats.read(nodeTtlMs)
  return {
    server: PACKAGE.name,
    version: PACKAGE.version,
    net: addresses,
    serverId,
    mem: { free: megabytes(freemem()), total: megabytes(totalmem()) },
    stats,
    ...(node && {
      node: {
        id: node.id,
        name: node.name,
        online: node.online,
        rooms: node.roomCount,
        backlog: node.backlog(),
      },
    }),
  }
}
