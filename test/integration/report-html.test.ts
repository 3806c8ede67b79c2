import assert from 'node:assert/strict'
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { renderReportHtml } from '../../services/report/report-html.ts'
import type { ControlEntry, RunReport } from '../../services/report/run-report.ts'
import { dumpDom, ensureChromium, readPng, screenshot } from '../helpers/chromium.ts'
import { notarize, reportOf, testKeys } from '../helpers/notarized-run.ts'
import { scratchDir } from '../helpers/stack.ts'
import { syntheticRuns } from '../helpers/synthetic-runs.ts'

/**
 * The HTML report as a person sees it, in headless Chromium: a screenshot, and the laid-out page measured by a
 * probe script appended to a copy (the report itself has no script). No broker is needed; it is here because it
 * drives a browser.
 */

/** A 300-event run that overspends its $0.50 budget and is killed for it. */
function killedRun(): { report: RunReport; trippedBy: string } {
  const [events] = syntheticRuns({ seed: 31, runs: 1, minSteps: 300, maxSteps: 301, tenant: 'acme' })
  const flat: Record<string, unknown>[] = events!.map((e) => ({ ...e, occurred_at: Date.parse(String(e.occurred_at)), received_at: Date.parse(String(e.occurred_at)) + 3, actor: 'agent' }))
  flat[flat.length - 1] = { ...flat.at(-1)!, outcome: 'killed', reason: 'budget breach' }
  const tripping = flat.filter((e) => e.type === 'tool.call')[40]!
  const runId = String(flat[0]!.run_id)
  const kill: ControlEntry = {
    kind: 'kill_switch.decision', record_id: 'kill-1', occurred_at: new Date(Number(tripping.occurred_at)).toISOString(), scope: 'run', scope_key: runId, state: 'killed', trigger: 'budget_breach',
    level: null, dimension: null, window: null, used: null, limit: null, reason: 'cost_usd 0.51 over the limit 0.5', tripping_event_id: String(tripping.event_id),
  }
  const alert: ControlEntry = { ...kill, kind: 'budget.alert', record_id: 'alert-1', state: null, trigger: null, level: 'threshold', dimension: 'cost_usd', window: 'run', used: 0.41, limit: 0.5, reason: '80% of the run budget' }
  const { links, digests } = notarize(flat, testKeys().signer, { digestEvery: 100 })
  return { report: reportOf('acme', runId, links, digests, [alert, kill]), trippedBy: String(tripping.event_id) }
}

const PROBE = `<script>
const q = (s) => document.querySelector(s)
const box = (el) => { const r = el.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height } }
const bg = (el) => getComputedStyle(el).backgroundColor
const probe = {
  glance: q('#at-a-glance').innerText,
  glanceBox: box(q('#at-a-glance')),
  outcome: q('#outcome').innerText,
  outcomeBg: bg(q('#outcome')),
  banner: q('#kill-banner') && { text: q('#kill-banner').innerText, bg: bg(q('#kill-banner')), box: box(q('#kill-banner')) },
  chart: box(q('#cost-chart')),
  costLine: box(q('#cost-line')),
  costPoints: q('#cost-line').getAttribute('points').trim().split(' ').length,
  budgetLine: q('#budget-line') && box(q('#budget-line')),
  killMarkers: document.querySelectorAll('#cost-chart .kill-marker').length,
  actionRows: document.querySelectorAll('#actions tbody tr').length,
  killedActions: [...document.querySelectorAll('#actions tbody tr.kill')].map((tr) => ({ id: tr.dataset.eventId, bg: bg(tr.cells[0]), h: tr.getBoundingClientRect().height })),
  controlKills: [...document.querySelectorAll('#control tbody tr.kill')].map((tr) => ({ text: tr.innerText, bg: bg(tr.cells[0]) })),
  timelineRows: document.querySelectorAll('#timeline tbody tr').length,
  chainHead: q('#chain-head').innerText,
  external: document.querySelectorAll('script[src], link[href], img[src], iframe').length,
}
const pre = document.createElement('pre')
pre.id = 'probe'
pre.textContent = btoa(unescape(encodeURIComponent(JSON.stringify(probe))))
document.body.appendChild(pre)
</script>`

test('the HTML report in headless Chromium: the run at a glance, kill events highlighted, cost drawn against the budget, the action table', { timeout: 300_000 }, () => {
  ensureChromium()
  const { report, trippedBy } = killedRun()
  const dir = scratchDir('report-html')
  const file = path.join(dir, 'report.html')
  const html = renderReportHtml(report)
  writeFileSync(file, html)

  // What a person sees: a screenshot of the top of the page.
  const png = path.join(dir, 'report.png')
  screenshot(file, png, 1280, 1400)
  if (process.env.LEDGER_REPORT_SCREENSHOT) copyFileSync(png, process.env.LEDGER_REPORT_SCREENSHOT)
  assert.ok(statSync(png).size > 20_000, 'a real rendering, not a blank page')
  const image = readPng(png)
  assert.equal(image.width, 1280)
  const count = (rgb: [number, number, number], y0: number, y1: number) => {
    let n = 0
    for (let y = y0; y < Math.min(y1, image.height); y++) for (let x = 0; x < image.width; x += 2) {
      const [r, g, b] = image.pixel(x, y)
      if (Math.abs(r - rgb[0]) < 8 && Math.abs(g - rgb[1]) < 8 && Math.abs(b - rgb[2]) < 8) n += 1
    }
    return n
  }
  assert.ok(count([179, 38, 30], 0, 250) > 2_000, 'the red kill banner is on screen, at the top')
  assert.ok(count([47, 111, 214], 0, image.height) > 200, 'the blue cost line is drawn')

  // What the laid-out page holds, measured in the browser.
  const probed = dumpDom(writeProbe(dir, html))
  const m = /<pre id="probe">([A-Za-z0-9+/=]+)<\/pre>/.exec(probed)
  assert.ok(m, 'the probe ran in Chromium')
  const p = JSON.parse(Buffer.from(m[1]!, 'base64').toString('utf8'))
  for (const text of ['killed', 'refund-assistant', report.run.agent.version!, `user:${(report.run.principal as { id: string }).id}`, 'finance-ops', 'execute_with_approval', report.run.started_at!]) {
    assert.ok(p.glance.includes(text), `the run at a glance shows ${text}: ${p.glance}`)
  }
  assert.equal(p.outcome, 'killed')
  assert.equal(p.outcomeBg, 'rgb(253, 226, 225)')
  assert.ok(p.banner && p.banner.box.h > 20 && p.banner.box.y < p.glanceBox.y, 'the kill banner is shown above the run at a glance')
  assert.equal(p.banner.bg, 'rgb(179, 38, 30)')
  assert.match(p.banner.text, /killed by budget_breach/)
  assert.ok(p.chart.w > 1_000 && p.chart.h > 200, `the cost chart is laid out full width: ${JSON.stringify(p.chart)}`)
  assert.ok(p.costPoints > 50, 'the cost line has a point per model call')
  assert.ok(p.budgetLine, 'the budget is drawn')
  assert.ok(p.costLine.y < p.budgetLine.y, 'the cost line rises above the budget line: the run overspent')
  assert.equal(p.killMarkers, 1, 'the kill is marked on the chart')
  assert.equal(p.actionRows, report.actions.length)
  assert.deepEqual(p.killedActions.map((k: { id: string }) => k.id), [trippedBy], 'exactly the action that tripped the kill switch is highlighted')
  assert.equal(p.killedActions[0].bg, 'rgb(253, 226, 225)')
  assert.ok(p.killedActions[0].h > 0)
  assert.equal(p.controlKills.length, 1)
  assert.match(p.controlKills[0].text, /budget_breach/)
  assert.equal(p.timelineRows, report.integrity.chain.length)
  assert.ok(p.chainHead.includes(report.integrity.head!.chain_hash))
  assert.equal(p.external, 0, 'no external script, style, image or frame')
  assert.ok(!readFileSync(file, 'utf8').includes('<script'), 'the report itself has no script')
})

function writeProbe(dir: string, html: string): string {
  const probed = path.join(dir, 'probed.html')
  writeFileSync(probed, html.replace('</body>', `${PROBE}\n</body>`))
  return probed
}
