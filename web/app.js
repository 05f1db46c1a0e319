// The dashboard: sign-in, the scope picker, and the panels (score and trend, what to fix first,
// recent changes, exemptions). Data comes from api.js only; each panel shows its own state:
// loading, the data, "not available on this server" (404), "no access" (403), or an error.

import * as api from './api.js';
import * as auth from './auth.js';
import { trend } from './chart.js';

// Under `--auth any` the server accepts any well-formed token: send a fixed one.
const ANY_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.e30.c2ln';

const $ = (id) => document.getElementById(id);
const fmt = (n, digits = 2) => (typeof n === 'number' ? Number(n.toFixed(digits)).toString() : '–');
const pct = (fraction) => fmt(fraction * 100, 2);

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** A panel's state line: a message, or nothing once the data shows. */
function status(panelId, message, kind = 'info') {
  const panel = $(panelId);
  const line = panel.querySelector('[data-status]');
  line.textContent = message || '';
  line.className = `status ${kind}`;
  line.hidden = !message;
  const body = panel.querySelector('[data-body]');
  if (body) body.hidden = Boolean(message);
}

function explain(e) {
  if (e instanceof api.ApiError) {
    if (e.status === 404 && /^(NotFound|404)$/.test(e.code)) return ['Not available on this server.', 'muted'];
    if (e.status === 403) return [`No access: your role assignments do not allow reading this scope. (${e.message})`, 'denied'];
    if (e.status === 401) return ['Your sign-in has expired. Please sign in again.', 'error'];
    return [`${e.message} (${e.code})`, 'error'];
  }
  return [String(e && e.message ? e.message : e), 'error'];
}

function fail(panelId, e) {
  const [message, kind] = explain(e);
  status(panelId, message, kind);
  if (e instanceof api.ApiError && e.status === 401 && state.config.auth === 'strict') {
    auth.signOut();
    showSignIn('Your sign-in has expired.');
  }
}

const state = {
  config: null,
  subscriptions: [],
  groups: [],
  groupSubscriptions: [], // the subscriptions below the chosen management group
  rgNext: null,
  scope: null, // {kind: 'sub'|'rg'|'mg', path, subscription, label}
  improvementsNext: null,
  changesNext: null,
  exemptionsNext: null,
};

function showSignIn(error) {
  $('signin').hidden = false;
  $('content').hidden = true;
  const err = $('signin-error');
  err.textContent = error || '';
  err.hidden = !error;
  $('signin-button').focus();
}

function showWho(user) {
  const who = $('who');
  who.replaceChildren();
  if (state.config.auth === 'any') {
    who.append(h('span', { text: 'Emulator mode (--auth any): no sign-in' }));
    return;
  }
  const out = h('button', { type: 'button', text: 'Sign out' });
  out.addEventListener('click', () => {
    auth.signOut();
    location.reload();
  });
  who.append(h('span', { text: `Signed in as ${user || 'user'} ` }), out);
}

// ---- the scope picker -------------------------------------------------------------------

function fillSelect(select, options, keepFirst) {
  const first = keepFirst ? select.options[0] : null;
  select.replaceChildren(...(first ? [first] : []));
  for (const [value, label] of options) select.append(h('option', { value, text: label }));
  select.disabled = select.options.length === 0;
}

async function loadPicker() {
  try {
    const subs = await api.subscriptions();
    state.subscriptions = subs.items;
  } catch (e) {
    fail('score-panel', e);
    return false;
  }
  if (state.subscriptions.length === 0) {
    // No role anywhere: every panel says so rather than staying empty.
    for (const panel of ['score-panel', 'controls-panel', 'changes-panel', 'exemptions-panel']) {
      status(panel, 'No access: you hold no role on any subscription. Ask an administrator for a role assignment.', 'denied');
    }
    $('trend').textContent = '';
    return false;
  }
  fillSelect($('pick-sub'), state.subscriptions.map((s) => [s.id, s.name]), false);
  try {
    state.groups = await api.managementGroups();
    fillSelect($('pick-mg'), state.groups.map((g) => [g.name, g.displayName]), true);
  } catch {
    // Management groups are optional (absent on older servers, or no access): keep "(all)".
    $('pick-mg').disabled = true;
  }
  return true;
}

async function loadResourceGroups(subscription, more) {
  const select = $('pick-rg');
  if (!more) {
    fillSelect(select, [], true);
    state.rgNext = null;
  }
  try {
    const page = await api.resourceGroupsPage(subscription, more ? state.rgNext : null);
    const known = new Set([...select.options].map((o) => o.value.toLowerCase()));
    for (const g of page.groups.sort()) {
      if (!known.has(g.toLowerCase())) select.append(h('option', { value: g, text: g }));
    }
    state.rgNext = page.nextLink || null;
  } catch {
    state.rgNext = null;
  }
  select.disabled = false;
  $('more-rg').hidden = !state.rgNext;
}

function currentScope() {
  const mg = $('pick-mg').value;
  const sub = $('pick-sub').value;
  const rg = $('pick-rg').value;
  if (rg) {
    return { kind: 'rg', path: `/subscriptions/${sub}/resourceGroups/${rg}`, subscription: sub, label: `resource group ${rg}` };
  }
  if (mg && !sub) {
    return { kind: 'mg', path: `/providers/Microsoft.Management/managementGroups/${mg}`, subscription: null, label: `management group ${mg}` };
  }
  const s = state.subscriptions.find((x) => x.id === sub);
  return { kind: 'sub', path: `/subscriptions/${sub}`, subscription: sub, label: s ? s.name : sub };
}

async function onManagementGroup() {
  const mg = $('pick-mg').value;
  let subs = state.subscriptions;
  if (mg) {
    try {
      const below = new Set((await api.managementGroupSubscriptions(mg)).map((x) => x.toLowerCase()));
      subs = subs.filter((s) => below.has(s.id.toLowerCase()));
    } catch {
      subs = [];
    }
    state.groupSubscriptions = subs;
    fillSelect($('pick-sub'), [['', '(whole management group)'], ...subs.map((s) => [s.id, s.name])], false);
    $('pick-sub').value = '';
    fillSelect($('pick-rg'), [], true);
    $('pick-rg').disabled = true;
    $('more-rg').hidden = true;
  } else {
    fillSelect($('pick-sub'), subs.map((s) => [s.id, s.name]), false);
    await loadResourceGroups($('pick-sub').value, false);
  }
  await render();
}

async function onSubscription() {
  const sub = $('pick-sub').value;
  if (sub) await loadResourceGroups(sub, false);
  else {
    fillSelect($('pick-rg'), [], true);
    $('pick-rg').disabled = true;
  }
  await render();
}

// ---- the panels -------------------------------------------------------------------------

async function renderScore(scope) {
  status('score-panel', 'Loading…');
  $('scope-name').textContent = `— ${scope.label}`;
  try {
    const s = await api.score(scope.path);
    $('score-current').textContent = fmt(s.current);
    $('score-max').textContent = fmt(s.max);
    $('score-percentage').textContent = pct(s.percentage);
    status('score-panel', '');
  } catch (e) {
    fail('score-panel', e);
  }
  const chart = $('trend');
  const sub = scope.subscription;
  if (!sub) {
    $('trend-caption').textContent = 'Trend';
    chart.textContent = 'The score history is kept per subscription: choose a subscription to see its trend.';
    return;
  }
  $('trend-caption').textContent = scope.kind === 'rg' ? 'Trend of the subscription (last 30 days)' : 'Trend (last 30 days)';
  chart.textContent = 'Loading…';
  try {
    trend(chart, await api.history(sub));
  } catch (e) {
    chart.textContent = explain(e)[0];
  }
}

function resourceList(ids) {
  return h('ul', { class: 'resources' }, ...ids.map((id) => h('li', {}, h('code', { text: id }))));
}

function recommendationItem(r) {
  const item = h(
    'li',
    { class: 'recommendation' },
    h('h4', {}, h('span', { text: r.displayName }), r.severity ? h('span', { class: `sev sev-${String(r.severity).toLowerCase()}`, text: r.severity }) : null),
  );
  if (r.remediation) item.append(h('p', { class: 'remediation', text: r.remediation }));
  if (r.unhealthyResourceCount !== undefined) {
    item.append(h('p', { text: `${r.unhealthyResourceCount} unhealthy resource${r.unhealthyResourceCount === 1 ? '' : 's'}` }));
  }
  if (r.unhealthyResources && r.unhealthyResources.length) {
    const list = resourceList(r.unhealthyResources);
    item.append(list);
    let next = r.nextLink;
    if (next) {
      const more = h('button', { type: 'button', text: 'More resources' });
      more.addEventListener('click', async () => {
        more.disabled = true;
        try {
          const page = await api.unhealthyResources(next);
          for (const id of page.ids) list.append(h('li', {}, h('code', { text: id })));
          next = page.nextLink;
        } catch (e) {
          item.append(h('p', { class: 'error', text: explain(e)[0] }));
          next = null;
        }
        more.disabled = false;
        more.hidden = !next;
      });
      item.append(more);
    }
  }
  return item;
}

function controlItem(c, index, loadDetails) {
  const detailsId = `control-${index}`;
  const toggle = h(
    'button',
    { type: 'button', class: 'control-toggle', 'aria-expanded': 'false', 'aria-controls': detailsId },
    h('span', { class: 'name', text: c.displayName }),
    h('span', { class: 'points', 'data-testid': 'control-points', text: `+${fmt(c.points)}` }),
    h('span', { class: 'muted', text: ` points (+${fmt(c.percentage)} %) · ${fmt(c.current)} of ${fmt(c.max)}` }),
  );
  const details = h('div', { id: detailsId, class: 'details', hidden: true });
  let loaded = false;
  toggle.addEventListener('click', async () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true';
    toggle.setAttribute('aria-expanded', String(open));
    details.hidden = !open;
    if (open && !loaded) {
      loaded = true;
      details.textContent = 'Loading…';
      try {
        const recs = await loadDetails(c);
        details.replaceChildren(recs.length ? h('ul', { class: 'recommendations' }, ...recs.map(recommendationItem)) : h('p', { text: 'No recommendations.' }));
      } catch (e) {
        details.textContent = explain(e)[0];
        loaded = false;
      }
    }
  });
  return h('li', { class: 'control', 'data-control': c.name }, toggle, details);
}

async function renderControls(scope, more) {
  const list = $('controls');
  const moreButton = $('controls-more');
  if (!more) {
    list.replaceChildren();
    status('controls-panel', 'Loading…');
  }
  // The improvements API ranks controls and names the unhealthy resources; without it, rank the
  // controls by max − current from secureScoreControls and read recommendations from metadata.
  // At a management group the improvements API is asked through a subscription below it.
  const below = state.groupSubscriptions[0];
  const sub = scope.subscription || (below && below.id);
  if (!sub) {
    status('controls-panel', 'No subscription below this management group: nothing to rank.');
    moreButton.hidden = true;
    return;
  }
  try {
    const page = await api.improvements(sub, scope.path, more ? state.improvementsNext : null);
    $('controls-source').textContent = 'Controls ranked by the points fixing them would add.';
    page.items.forEach((c) => list.append(controlItem(c, list.children.length, async (x) => x.recommendations)));
    state.improvementsNext = page.nextLink || null;
    moreButton.hidden = !state.improvementsNext;
    if (!more && page.items.length === 0) status('controls-panel', 'Nothing to fix: every control has its full score.', 'ok');
    else status('controls-panel', '');
    return;
  } catch (e) {
    if (!(e instanceof api.ApiError && e.status === 404 && /^(NotFound|404)$/.test(e.code))) {
      fail('controls-panel', e);
      return;
    }
  }
  moreButton.hidden = true;
  try {
    const [controls, s] = await Promise.all([api.controls(scope.path), api.score(scope.path)]);
    $('controls-source').textContent = 'Controls ranked by max − current score (the improvements API is not available on this server).';
    const ranked = controls
      .map((c) => {
        const points = Math.round((c.max - c.current) * 100) / 100;
        return { ...c, points, percentage: s.max > 0 ? Math.round((points / s.max) * 10000) / 100 : 0 };
      })
      .filter((c) => c.points > 0)
      .sort((a, b) => b.points - a.points || a.displayName.localeCompare(b.displayName));
    ranked.forEach((c, i) =>
      list.append(controlItem(c, i, async (x) => Promise.all(x.assessments.map((a) => api.assessmentMetadata(a).catch(() => ({ name: a, displayName: a })))))),
    );
    if (ranked.length === 0) status('controls-panel', 'Nothing to fix: every control has its full score.', 'ok');
    else status('controls-panel', '');
  } catch (e) {
    fail('controls-panel', e);
  }
}

function statusBadge(s) {
  return h('span', { class: `badge st-${String(s || '').toLowerCase()}`, text: s || '–' });
}

async function renderChanges(scope, more) {
  const body = $('changes');
  if (!more) body.replaceChildren();
  if (!scope.subscription) {
    status('changes-panel', 'Changes are listed per subscription: choose a subscription.', 'muted');
    $('changes-more').hidden = true;
    return;
  }
  if (!more) status('changes-panel', 'Loading…');
  try {
    const page = await api.changes(scope.subscription, more ? state.changesNext : null);
    const inScope = scope.kind === 'rg' ? page.items.filter((c) => (c.resourceId || '').toLowerCase().startsWith(`${scope.path.toLowerCase()}/`)) : page.items;
    for (const c of inScope) {
      const score = c.before && c.after ? `${pct(c.before.percentage)} % → ${pct(c.after.percentage)} %` : '';
      body.append(
        h('tr', {},
          h('td', {}, h('time', { datetime: c.time, text: new Date(c.time).toLocaleString() })),
          h('td', { text: c.displayName }),
          h('td', {}, h('code', { text: c.resourceId })),
          h('td', {}, statusBadge(c.from), ' → ', statusBadge(c.to)),
          h('td', { text: score })),
      );
    }
    state.changesNext = page.nextLink || null;
    $('changes-more').hidden = !state.changesNext;
    if (body.children.length === 0 && !state.changesNext) status('changes-panel', 'No status changed in the last 30 days.', 'muted');
    else status('changes-panel', '');
  } catch (e) {
    $('changes-more').hidden = true;
    fail('changes-panel', e);
  }
}

function covers(exemptionScope, scope) {
  // An exemption matters here when it lies within the chosen scope or covers it.
  const a = (exemptionScope || '').toLowerCase().replace(/\/+$/, '');
  const b = scope.path.toLowerCase();
  return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}

async function renderExemptions(scope, more) {
  const body = $('exemptions');
  if (!more) {
    body.replaceChildren();
    status('exemptions-panel', 'Loading…');
  }
  try {
    const page = await api.exemptions(more ? state.exemptionsNext : null);
    const now = Date.now();
    for (const x of page.items) {
      if (x.expiresOn && Date.parse(x.expiresOn) <= now) continue;
      if (scope.kind !== 'mg' && !covers(x.scope, scope)) continue;
      body.append(
        h('tr', {},
          h('td', { text: x.name }),
          h('td', { text: x.assessment }),
          h('td', {}, h('code', { text: x.scope })),
          h('td', { text: x.category }),
          h('td', { text: x.expiresOn ? new Date(x.expiresOn).toLocaleString() : 'never' }),
          h('td', { text: x.description || '' })),
      );
    }
    state.exemptionsNext = page.nextLink || null;
    $('exemptions-more').hidden = !state.exemptionsNext;
    if (body.children.length === 0 && !state.exemptionsNext) status('exemptions-panel', 'No exemption in force at this scope.', 'muted');
    else status('exemptions-panel', '');
  } catch (e) {
    $('exemptions-more').hidden = true;
    fail('exemptions-panel', e);
  }
}

async function render() {
  const scope = currentScope();
  state.scope = scope;
  await Promise.all([renderScore(scope), renderControls(scope, false), renderChanges(scope, false), renderExemptions(scope, false)]);
  document.body.dataset.ready = 'true';
}

// ---- start ------------------------------------------------------------------------------

async function start() {
  try {
    state.config = await api.config();
  } catch (e) {
    document.body.prepend(h('p', { class: 'error', role: 'alert', text: `Cannot read the dashboard settings: ${e.message}` }));
    return;
  }
  $('signin-button').addEventListener('click', () => auth.signIn(state.config));
  if (state.config.auth === 'any') {
    api.useToken(() => ANY_TOKEN);
  } else {
    // Sign-in comes back to the server's public URL: start there, or the answer would reach a
    // tab of another origin that does not hold this sign-in's verifier.
    const home = new URL(state.config.redirectUri);
    if (home.origin !== location.origin) {
      location.replace(home.href);
      return;
    }
    const error = await auth.completeSignIn(state.config);
    const session = auth.session();
    if (!session) {
      showSignIn(error);
      return;
    }
    api.useToken(() => (auth.session() || {}).token || null);
    showWho(session.user);
  }
  if (state.config.auth === 'any') showWho();
  $('signin').hidden = true;
  $('content').hidden = false;
  if (!(await loadPicker())) return;
  await loadResourceGroups($('pick-sub').value, false);
  $('pick-mg').addEventListener('change', onManagementGroup);
  $('pick-sub').addEventListener('change', onSubscription);
  $('pick-rg').addEventListener('change', render);
  $('more-rg').addEventListener('click', () => loadResourceGroups($('pick-sub').value, true));
  $('controls-more').addEventListener('click', () => renderControls(state.scope, true));
  $('changes-more').addEventListener('click', () => renderChanges(state.scope, true));
  $('exemptions-more').addEventListener('click', () => renderExemptions(state.scope, true));
  await render();
}

start();
