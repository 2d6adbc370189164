/** Every scenario, in the order the bench runs them by default. */
import type { Scenario } from '../lib/scenario.js'
import { catchup } from './catchup.js'
import { codecs } from './codecs.js'
import { connections } from './connections.js'
import { connections100k } from './connections-100k.js'
import { fanout } from './fanout.js'
import { ingest } from './ingest.js'
import { latency } from './latency.js'
import { redisWork } from './redis-work.js'
import { unicast } from './unicast.js'

export const SCENARIOS: readonly Scenario[] = [
  fanout,
  latency,
  unicast,
  connections,
  catchup,
  ingest,
  redisWork,
  codecs,
  connections100k,
]

export const SCENARIO_NAMES: readonly string[] = SCENARIOS.map(scenario => scenario.name)
