// Open-loop load at a fixed rate, evenly paced: request i is due at start + i / rate, whatever
// happened to the earlier ones, and its latency counts from when it was due (so a slow answer
// delays no later request and hides nothing: no coordinated omission). autocannon's -R sends
// each connection's share of a second back to back at the start of the second, a burst; this
// is the steady arrival rate a fleet of VMs makes.
//
// usage: node open_loop.js URL RATE SECONDS METHOD [BODY] [HEADERS_JSON]
// prints one JSON object shaped like autocannon's -j summary (the fields bench_resolve reads).
'use strict'
const http = require('http')
const { performance } = require('perf_hooks')

const [url, rateText, secondsText, method, body, headersJson] = process.argv.slice(2)
const target = new URL(url)
const rate = Number(rateText)
const total = Math.round(rate * Number(secondsText))
const interval = 1000 / rate
const headers = JSON.parse(headersJson || '{}')
if (body) headers['content-length'] = Buffer.byteLength(body)
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 })
const latencies = []
let ok = 0
let non2xx = 0
let errors = 0
const statuses = {}
const errorKinds = {}
let settled = 0
let next = 0
const start = performance.now()

function fire (index) {
  const due = start + index * interval
  const request = http.request({
    hostname: target.hostname,
    port: target.port,
    path: target.pathname + target.search,
    method,
    headers,
    agent
  }, (response) => {
    response.resume()
    response.on('end', () => {
      latencies.push(performance.now() - due)
      if (response.statusCode >= 200 && response.statusCode < 300) ok++
      else {
        non2xx++
        statuses[response.statusCode] = (statuses[response.statusCode] || 0) + 1
      }
      settle()
    })
  })
  request.setTimeout(30000, () => request.destroy(new Error('timeout')))
  request.on('error', (error) => {
    errors++
    const kind = error.code || error.message
    errorKinds[kind] = (errorKinds[kind] || 0) + 1
    settle()
  })
  if (body) request.write(body)
  request.end()
}

function schedule () {
  const now = performance.now()
  while (next < total && start + next * interval <= now) fire(next++)
  if (next < total) setTimeout(schedule, Math.max(0, start + next * interval - performance.now()))
}

function percentile (sorted, fraction) {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]
}

function settle () {
  if (++settled < total) return
  const elapsed = (performance.now() - start) / 1000
  const sorted = latencies.slice().sort((a, b) => a - b)
  process.stdout.write(JSON.stringify({
    requests: { average: ok / elapsed, total },
    latency: {
      p50: Math.round(percentile(sorted, 0.5) * 10) / 10,
      p99: Math.round(percentile(sorted, 0.99) * 10) / 10
    },
    '2xx': ok,
    non2xx,
    errors,
    statuses,
    errorKinds
  }) + '\n')
  agent.destroy()
}

schedule()
