import test from 'ava'
import { parseRedisNode, redactRedisUrl } from '../../src/config/redis-url.js'

test('redactRedisUrl hides user and password wherever the address holds them', t => {
  const cases: [string, string][] = [
    ['redis://:hunter2@10.0.0.1:6379', 'redis://***@10.0.0.1:6379'],
    ['redis://app:hunter2@10.0.0.1:6379/2', 'redis://***@10.0.0.1:6379/2'],
    ['rediss://app:hun@ter2@redis.example:6380', 'rediss://***@redis.example:6380'],
    [':hunter2@10.0.0.1:6379', '***@10.0.0.1:6379'],
    ['redis://10.0.0.1:6379?password=hunter2&db=1', 'redis://10.0.0.1:6379?password=***&db=1'],
    ['redis://10.0.0.1:6379', 'redis://10.0.0.1:6379'],
    ['10.0.0.1:6379', '10.0.0.1:6379'],
  ]
  for (const [address, shown] of cases) t.is(redactRedisUrl(address), shown, address)
})

test('parseRedisNode reads address, decoded credentials and TLS', t => {
  t.deepEqual(parseRedisNode('10.0.0.1:7000'), { host: '10.0.0.1', port: 7000, auth: { isTls: false } })
  t.deepEqual(parseRedisNode('rediss://app:p%40ss@[::1]'), {
    host: '::1',
    port: 6379,
    auth: { isTls: true, username: 'app', password: 'p@ss' },
  })
})
