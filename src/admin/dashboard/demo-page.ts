/**
 * The demo page (GET /demo/): plain HTML and JS, no build step. It loads the
 * published snapper-consumer browser build (served next to it), asks for a
 * token of a fresh demo user, connects to the gateway (another port: polling
 * is cross-origin with credentials, and the gateway echoes the Origin), and
 * lists what arrives. The form publishes to that user's own room through
 * POST /demo/publish. Everything shown goes through textContent, never HTML.
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
<p class="muted" id="note">The page's consumer (snapper-consumer, Engine.IO 3) receives every message published to its room <code id="room"></code>, in order.</p>
<h2>Received</h2>
<ol id="messages"></ol>
<script src="jsonrpc.js"></script>
<script src="engine.io.js"></script>
<script src="consumer.js"></script>
<script>
(function () {
  'use strict'
  var statusEl = document.getElementById('status')
  var list = document.getElementById('messages')
  function setStatus (text, kind) {
    statusEl.textContent = text
    statusEl.className = kind || ''
  }
  function show (message) {
    var item = document.createElement('li')
    item.textContent = message
    list.appendChild(item)
  }
  if (typeof window.Consumer !== 'function') {
    setStatus('client files missing (npm install snapper-consumer)', 'problem')
    return
  }

  fetch('token', { cache: 'no-store' })
    .then(function (res) {
      if (!res.ok) throw new Error('token: HTTP ' + res.status)
      return res.json()
    })
    .then(start)
    .catch(function (err) { setStatus(String(err.message || err), 'problem') })

  function start (demo) {
    document.getElementById('who').textContent = '(user ' + demo.userId + ')'
    document.getElementById('room').textContent = demo.room
    var consumer = new window.Consumer()
    consumer.onopen = function () { setStatus('connected', 'connected') }
    consumer.onclose = function () { setStatus('disconnected, reconnecting', 'problem') }
    consumer.onerror = function (err) { console.warn('snapper consumer', err) }
    // A delivery batch is a JSON-RPC request "publish" whose params are the messages.
    consumer.onmessage = function (event) {
      if (event.type !== 'request' || event.data.method !== 'publish') return
      var params = event.data.params || []
      for (var i = 0; i < params.length; i++) show(params[i])
    }
    consumer._join = function () {} // rooms are joined by producers; this user only has its own room
    var gateway = location.protocol + '//' + location.hostname + ':' + demo.gatewayPort
    setStatus('connecting')
    consumer.connect(gateway, { path: '/websocket', token: demo.token })

    document.getElementById('publish').addEventListener('submit', function (event) {
      event.preventDefault()
      var input = document.getElementById('message')
      var message = input.value
      if (!message) return
      fetch('publish', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + demo.token },
        body: JSON.stringify({ message: message })
      }).then(function (res) {
        if (!res.ok) throw new Error('publish: HTTP ' + res.status)
        input.value = ''
      }).catch(function (err) { setStatus(String(err.message || err), 'problem') })
    })
  }
})()
</script>
</body>
</html>
`
