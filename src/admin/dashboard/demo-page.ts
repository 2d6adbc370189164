/**
 * The demo page (GET /demo/): plain HTML and JS, no build step. It asks for a
 * token of a fresh demo user, connects to the gateway (another port) with the
 * SDK's browser bundle (/sdk/consumer.js; `?codec=msgpack` for binary
 * frames, `&transport=polling` to skip the websocket, `&transport=upgrade` to start on polling and upgrade;
 * the status line's data-transport says which one is in use), or with the published snapper-consumer (`?client=snapper-consumer`,
 * its browser build served next to the page: cross-origin polling with
 * credentials, then the upgrade), and lists what arrives. The form publishes
 * to that user's own room through POST /demo/publish. Everything shown goes
 * through textContent, never HTML.
 */
export const DEMO_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Snapper demo</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #222 }
  #status { font-weight: 600 }
  #status.connected { color: #18794e }
  #status.problem { color: #b42318 }
  form { display: flex; gap: .5rem; margin: 1rem 0 }
  input { flex: 1; padding: .4rem }
  ol { padding-left: 1.5rem }
  li { margin: .2rem 0; word-break: break-word }
  .muted { color: #666; font-size: 13px }
</style>
</head>
<body>
<h1>Snapper demo</h1>
<p>Consumer: <span id="status">starting</span> <span id="who" class="muted"></span></p>
<form id="publish">
  <input id="message" name="message" autocomplete="off" placeholder="Type a message" required maxlength="2000">
  <button id="send" type="submit">Publish</button>
</form>
<p class="muted" id="note">The page's consumer (<span id="client"></span>) receives every message published to its room <code id="room"></code>, in order, once.</p>
<h2>Received</h2>
<ol id="messages"></ol>
<script type="module">
const statusEl = document.getElementById('status')
const list = document.getElementById('messages')
const params = new URLSearchParams(location.search)
const isLegacy = params.get('client') === 'snapper-consumer'
const codec = params.get('codec') === 'msgpack' ? 'msgpack' : 'json'
const transport = params.get('transport')
const transports = transport === 'polling' ? ['polling'] : transport === 'upgrade' ? ['polling', 'websocket'] : undefined

function setStatus (text, kind) {
  statusEl.textContent = text
  statusEl.className = kind || ''
}
function show (message, meta) {
  const item = document.createElement('li')
  item.textContent = message
  if (meta) {
    item.dataset.room = meta.room
    item.dataset.seq = String(meta.seq)
    item.title = meta.room + ' #' + meta.seq
  }
  list.appendChild(item)
}
function loadScript (src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script')
    script.src = src
    script.onload = resolve
    script.onerror = () => reject(new Error('client files missing: ' + src + ' (npm install snapper-consumer)'))
    document.head.appendChild(script)
  })
}

/** The SDK: messages with their room and seq, acknowledged, deduplicated, reconnecting by itself. */
async function startSdk (gateway, demo) {
  const { Consumer } = await import('/sdk/consumer.js')
  const consumer = new Consumer(gateway, { token: demo.token, codec, transports })
  consumer.on('state', (state, details) => {
    if (state === 'open') {
      setStatus('connected', 'connected')
      statusEl.dataset.transport = details.transport
    } else if (state === 'reconnecting') setStatus('disconnected, reconnecting', 'problem')
    else if (state === 'closed') setStatus(details.reason || 'closed', 'problem')
  })
  consumer.on('message', show)
  consumer.on('gap', gap => show('(' + (gap.missed ?? 'some') + ' messages of ' + gap.room + ' were lost)'))
  consumer.on('error', err => console.warn('snapper consumer', err))
  await consumer.connect()
}

/** The published snapper-consumer (Engine.IO 3): a delivery is a JSON-RPC request "publish" of messages. */
async function startLegacy (gateway, demo) {
  for (const file of ['jsonrpc.js', 'engine.io.js', 'consumer.js']) await loadScript(file)
  const consumer = new window.Consumer()
  consumer.onopen = () => setStatus('connected', 'connected')
  consumer.onclose = () => setStatus('disconnected, reconnecting', 'problem')
  consumer.onerror = err => console.warn('snapper consumer', err)
  consumer.onmessage = event => {
    if (event.type !== 'request' || event.data.method !== 'publish') return
    for (const message of event.data.params || []) show(message)
  }
  consumer._join = () => {} // rooms are joined by producers; this user only has its own room
  consumer.connect(gateway, { path: '/websocket', token: demo.token })
}

async function start () {
  const res = await fetch('token', { cache: 'no-store' })
  if (!res.ok) throw new Error('token: HTTP ' + res.status)
  const demo = await res.json()
  document.getElementById('who').textContent = '(user ' + demo.userId + ')'
  document.getElementById('room').textContent = demo.room
  document.getElementById('client').textContent = isLegacy
    ? 'snapper-consumer, Engine.IO 3'
    : 'the Snapper SDK, Engine.IO 4, codec ' + codec + (transports ? ', ' + transports.join(' then ') : '')

  document.getElementById('publish').addEventListener('submit', event => {
    event.preventDefault()
    const input = document.getElementById('message')
    const message = input.value
    if (!message) return
    fetch('publish', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + demo.token },
      body: JSON.stringify({ message })
    }).then(res => {
      if (!res.ok) throw new Error('publish: HTTP ' + res.status)
      input.value = ''
    }).catch(err => setStatus(String(err.message || err), 'problem'))
  })

  const gateway = location.protocol + '//' + location.hostname + ':' + demo.gatewayPort
  setStatus('connecting')
  await (isLegacy ? startLegacy(gateway, demo) : startSdk(gateway, demo))
}

start().catch(err => setStatus(String(err.message || err), 'problem'))
</script>
</body>
</html>
`
