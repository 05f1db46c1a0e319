// Every call the dashboard makes to the server, and the shapes it reads from the answers.
// Each API is one small function here, so that a renamed field or path changes in one place.
// Every list is read one page at a time: a page's `nextLink` is followed only when asked.

const ARM_SECURITY = '2020-01-01';
const ARM_SUBSCRIPTIONS = '2022-12-01';
const ARM_MANAGEMENT = '2021-04-01';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let bearer = () => null;

/** Where the bearer token comes from (auth.js, or a fixed one under `--auth any`). */
export function useToken(provider) {
  bearer = provider;
}

/** GET a path of this server (or a nextLink it handed out) as JSON; an ApiError when not 2xx. */
export async function get(pathOrLink) {
  // nextLinks are absolute URLs of this server; keep only path and query, so the page never
  // talks to another origin whatever a response says.
  const url = new URL(pathOrLink, location.origin);
  const headers = { Accept: 'application/json' };
  const token = bearer();
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(url.pathname + url.search, { headers, cache: 'no-store' });
  let body = null;
  try {
    body = await r.json();
  } catch {
    body = null;
  }
  if (!r.ok) {
    const e = body && body.error;
    throw new ApiError(r.status, (e && e.code) || String(r.status), (e && e.message) || r.statusText);
  }
  return body;
}

const q = (params) => new URLSearchParams(params).toString();
const enc = encodeURIComponent;

/** The dashboard's sign-in settings. */
export const config = () => get('/ui/config.json');

/** Subscriptions the caller may see: [{id, name}] (one page; the list is short). */
export async function subscriptions() {
  const body = await get(`/subscriptions?${q({ 'api-version': ARM_SUBSCRIPTIONS })}`);
  return {
    items: (body.value || []).map((s) => ({ id: s.subscriptionId, name: s.displayName || s.subscriptionId })),
    nextLink: body.nextLink,
  };
}

/** Management groups: [{name, displayName}]. */
export async function managementGroups() {
  const body = await get(`/providers/Microsoft.Management/managementGroups?${q({ 'api-version': ARM_MANAGEMENT })}`);
  return (body.value || []).map((g) => ({
    name: g.name,
    displayName: (g.properties && g.properties.displayName) || g.name,
  }));
}

/** The subscription ids anywhere below a management group. */
export async function managementGroupSubscriptions(group) {
  let link = `/providers/Microsoft.Management/managementGroups/${enc(group)}/descendants?${q({ 'api-version': ARM_MANAGEMENT })}`;
  const ids = [];
  // Descendants of one group are few (groups and subscriptions, not resources): all pages.
  for (let pages = 0; link && pages < 50; pages++) {
    const body = await get(link);
    for (const d of body.value || []) {
      if (/subscriptions$/i.test(d.type || '')) ids.push(d.name);
    }
    link = body.nextLink;
  }
  return ids;
}

/** One page of a subscription's assessments, reduced to the resource groups their ids name. */
export async function resourceGroupsPage(subscription, nextLink) {
  const body = await get(
    nextLink ||
      `/subscriptions/${enc(subscription)}/providers/Microsoft.Security/assessments?${q({ 'api-version': ARM_SECURITY })}`,
  );
  const groups = new Set();
  for (const a of body.value || []) {
    const m = /\/resourceGroups\/([^/]+)/i.exec(a.id || '');
    if (m) groups.add(decodeURIComponent(m[1]));
  }
  return { groups: [...groups], nextLink: body.nextLink };
}

/** The secure score at an ARM scope path: {current, max, percentage}. */
export async function score(scope) {
  const body = await get(`${scope}/providers/Microsoft.Security/secureScores/ascScore?${q({ 'api-version': ARM_SECURITY })}`);
  const s = body.properties.score;
  return { current: s.current, max: s.max, percentage: s.percentage, weight: body.properties.weight };
}

/** The controls at a scope with their definitions: [{name, displayName, current, max, assessments}]. */
export async function controls(scope) {
  let link = `${scope}/providers/Microsoft.Security/secureScoreControls?${q({ 'api-version': ARM_SECURITY, $expand: 'definition' })}`;
  const out = [];
  // About fifteen controls exist: one or two pages.
  for (let pages = 0; link && pages < 20; pages++) {
    const body = await get(link);
    for (const c of body.value || []) {
      const p = c.properties || {};
      const def = (p.definition && p.definition.properties) || {};
      out.push({
        name: c.name,
        displayName: p.displayName || c.name,
        current: p.score ? p.score.current : 0,
        max: p.score ? p.score.max : 0,
        unhealthyResourceCount: p.unhealthyResourceCount,
        assessments: (def.assessmentDefinitions || []).map((a) => a.id.split('/').pop()),
      });
    }
    link = body.nextLink;
  }
  return out;
}

/** A recommendation's metadata: {displayName, severity, remediation}. */
export async function assessmentMetadata(name) {
  const body = await get(`/providers/Microsoft.Security/assessmentMetadata/${enc(name)}?${q({ 'api-version': ARM_SECURITY })}`);
  const p = body.properties || {};
  return { name, displayName: p.displayName || name, severity: p.severity, remediation: p.remediationDescription };
}

/** One page of the improvements (controls ranked by potential score increase). */
export async function improvements(subscription, scope, nextLink) {
  const params = { };
  if (scope && !/^\/subscriptions\/[^/]+$/i.test(scope)) params.scope = scope;
  const link = nextLink || `/securescore/v1/subscriptions/${enc(subscription)}/improvements${Object.keys(params).length ? `?${q(params)}` : ''}`;
  const body = await get(link);
  return {
    items: (body.value || []).map((c) => ({
      name: c.control,
      displayName: c.displayName || c.control,
      points: c.potentialScoreIncrease ? c.potentialScoreIncrease.points : 0,
      percentage: c.potentialScoreIncrease ? c.potentialScoreIncrease.percentage : 0,
      current: c.currentScore,
      max: c.maxScore,
      recommendations: (c.recommendations || []).map(recommendation),
    })),
    nextLink: body.nextLink,
  };
}

function recommendation(r) {
  // The first page of unhealthy resources comes inline: {value: [{id}], nextLink}.
  const page = r.unhealthyResources || {};
  return {
    name: r.name,
    displayName: r.displayName || r.name,
    severity: r.severity,
    remediation: r.remediationDescription,
    unhealthyResourceCount: r.unhealthyResourceCount,
    unhealthyResources: (page.value || []).map((x) => x.id),
    nextLink: page.nextLink,
  };
}

/** The next page of a recommendation's unhealthy resources: {ids, nextLink}. */
export async function unhealthyResources(nextLink) {
  const body = await get(nextLink);
  const ids = (body.value || []).map((x) => x.id);
  return { ids, nextLink: body.nextLink };
}

/** The daily score of a subscription over the last `days`: [{date, percentage, current, max}]. */
export async function history(subscription, days = 30) {
  const to = new Date();
  const from = new Date(to.getTime() - days * 86400000);
  const body = await get(`/securescore/v1/subscriptions/${enc(subscription)}/history?${q({ from: from.toISOString(), to: to.toISOString(), interval: 'day' })}`);
  return (body.value || []).map((p) => ({
    date: p.date || p.at,
    percentage: p.score.percentage,
    current: p.score.current,
    max: p.score.max,
  }));
}

/** One page of the status transitions of the last `days`, newest first. */
export async function changes(subscription, nextLink, days = 30) {
  const to = new Date();
  const from = new Date(to.getTime() - days * 86400000);
  const body = await get(
    nextLink || `/securescore/v1/subscriptions/${enc(subscription)}/changes?${q({ from: from.toISOString(), to: to.toISOString() })}`,
  );
  return {
    items: (body.value || []).map((c) => ({
      resourceId: c.resourceId,
      assessment: c.assessment,
      displayName: c.displayName || c.assessment,
      from: c.oldStatus,
      to: c.newStatus,
      time: c.at,
      before: c.scoreBefore,
      after: c.scoreAfter,
    })),
    nextLink: body.nextLink,
  };
}

/** One page of the exemptions: [{name, scope, assessment, category, expiresOn, description}]. */
export async function exemptions(nextLink) {
  const body = await get(nextLink || '/securescore/v1/exemptions');
  return {
    items: (body.value || []).map((e) => {
      const p = e.properties || {};
      return {
        name: e.name,
        scope: p.scope,
        assessment: p.assessment,
        category: p.category,
        expiresOn: p.expiresOn,
        description: p.description,
      };
    }),
    nextLink: body.nextLink,
  };
}
