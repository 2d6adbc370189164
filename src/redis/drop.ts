import type { Socket } from 'node:net'
import { Cluster, Redis } from 'ioredis'

// Dropping a Redis client at once, for a drain that gave up waiting for Redis (RedisClients.disconnect):
// ioredis' own disconnect() leaves commands pending, or sockets open for its disconnectTimeout, when
// Redis is gone or hung. What it touches of ioredis' internals is named in the interfaces below.

/**
 * The part of ioredis' Redis and Cluster that ends a client when its
 * connections report their close (not part of their typed API).
 */
interface Ending {
  reconnectTimeout: NodeJS.Timeout | null
  setStatus(status: 'end'): void
  flushQueue(error: Error): void
}

/** Ends a client as ioredis ends one whose connections closed: status `end`, every command it holds failed. */
function endNow(client: Redis | Cluster): void {
  const ending = client as unknown as Ending
  if (ending.reconnectTimeout) clearTimeout(ending.reconnectTimeout)
  ending.reconnectTimeout = null
  ending.setStatus('end')
  ending.flushQueue(new Error('Connection is closed.'))
}

/**
 * Drops a client now, failing every command it holds. ioredis' disconnect()
 * ends the socket and fails them once it reports its close, which a Redis
 * that hangs never answers (ioredis then waits its disconnectTimeout, 2 s):
 * the socket is destroyed instead. A client waiting to reconnect (Redis gone)
 * has no socket left to report a close: disconnect() would hold its commands,
 * and queue new ones, for ever. It is ended here as that close would end it
 * (status `end`, "Connection is closed.").
 */
export function dropNow(client: Redis | Cluster): void {
  if (client instanceof Cluster) return dropClusterNow(client)
  if (client.status !== 'reconnecting') {
    client.disconnect()
    return void (client.stream as Socket | undefined)?.destroy()
  }
  endNow(client)
}

/**
 * The connections of ioredis' Cluster besides its nodes (not part of its
 * typed API): the one of its ClusterSubscriber, those of its sharded
 * subscribers, and the emitter by which these ask it to read the slot map
 * again (ioredis silences it when it ends a cluster).
 */
interface ClusterSubscribers {
  subscriber?: { subscriber: Redis | null }
  shardedSubscribers?: { shardedSubscribers: Map<string, { getInstance(): Redis | null }> }
  subscriberGroupEmitter?: { removeAllListeners(): void }
}

/**
 * A Cluster client holds commands in its own offline queue (while it is not
 * ready: after it lost every node, or before it knows the slots) and in each
 * of its connections. Its disconnect() stops its timers and subscribers and
 * disconnects each connection as one Redis would be (see dropNow), and it
 * ends only once a node reports its close: one that lost every node has none
 * left to, and holds its queue for ever. Here each connection is dropped as
 * one Redis is, and the cluster is ended at once. A node that ends later
 * empties its pool again, which puts the cluster back to status `close`,
 * where it would queue commands again: it is ended again then.
 */
function dropClusterNow(cluster: Cluster): void {
  const inner = cluster as unknown as ClusterSubscribers
  const connections = [
    ...cluster.nodes('all'),
    inner.subscriber?.subscriber,
    ...[...(inner.shardedSubscribers?.shardedSubscribers.values() ?? [])].map(sharded =>
      sharded.getInstance(),
    ),
  ] // taken first: disconnect() forgets them
  inner.subscriberGroupEmitter?.removeAllListeners()
  cluster.disconnect()
  for (const connection of connections) if (connection) dropNow(connection)
  endNow(cluster)
  cluster.on('close', () => endNow(cluster))
}
