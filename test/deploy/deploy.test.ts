// The contract between the service and its infrastructure, checked on the files themselves:
// deploy/*.tf (parsed with @cdktf/hcl2json), the Dockerfile and .dockerignore.
// Nothing here talks to AWS; `terraform fmt -check` runs when a terraform/tofu binary is on PATH.
import t from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from '@cdktf/hcl2json'
import { KEEP_ALIVE_TIMEOUT_MS } from '../../server-options.js'
import { FLEET_INDEX } from '../../storage/table.js'

type Json = any

// Compiled to build/test/deploy/deploy.test.js: walk up to the folder that holds package.json and deploy/.
function findRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'deploy'))) return dir
    const up = dirname(dir)
    if (up === dir) return fileURLToPath(new URL('../../..', import.meta.url))
    dir = up
  }
}

const root = findRoot()
const deployDir = join(root, 'deploy')

// The service facts (README, config.ts): keep these in one place.
const CONTAINER_PORT = 3000
const HEALTH_PATH = '/health'
const TABLE = { hash: 'device', range: 'sk', index: 'all-readings-index', indexHash: 'feed', indexRange: 'sk' }
// The DynamoDB actions the service's code sends (storage/, read below), less those it only sends to
// the embedded/local DynamoDB (it checks an AWS table, never creates one; the copy that gives a local
// table made before the fleet index that index is a Scan, DeleteTable and CreateTable).
const LOCAL_ONLY = new Set(['CreateTable', 'UpdateTimeToLive', 'DeleteTable', 'Scan'])
const ITEM_COMMANDS: Record<string, string> = {
  Get: 'GetItem', Put: 'PutItem', Update: 'UpdateItem', Delete: 'DeleteItem', BatchGet: 'BatchGetItem', BatchWrite: 'BatchWriteItem', RawQuery: 'Query'
}
function dynamodbActionsInCode (): string[] {
  const names = new Set<string>()
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith('.ts')) for (const m of readFileSync(path, 'utf8').matchAll(/new (\w+)Command\(/g)) names.add(m[1]!)
    }
  }
  walk(join(root, 'storage'))
  return [...new Set([...names].filter(n => !LOCAL_ONLY.has(n)).map(n => `dynamodb:${ITEM_COMMANDS[n] ?? n}`))].sort()
}
const DYNAMODB_ACTIONS = dynamodbActionsInCode()
const FARGATE_MAX_STOP_TIMEOUT = 120

// ---------------------------------------------------------------------------
// Loading: every deploy/*.tf merged into one view.
// ---------------------------------------------------------------------------

interface Config {
  files: Map<string, string>
  resources: Record<string, Record<string, Json>>
  data: Record<string, Record<string, Json>>
  variables: Record<string, Json>
  locals: Record<string, Json>
  outputs: Record<string, Json>
  providers: Record<string, Json[]>
  terraform: Json[]
}

async function loadConfig (): Promise<Config> {
  const names = (await readdir(deployDir)).filter(f => f.endsWith('.tf')).sort()
  const config: Config = { files: new Map(), resources: {}, data: {}, variables: {}, locals: {}, outputs: {}, providers: {}, terraform: [] }
  for (const name of names) {
    const text = await readFile(join(deployDir, name), 'utf8')
    config.files.set(name, text)
    const parsed: Json = await parse(name, text)
    for (const [kind, target] of [['resource', config.resources], ['data', config.data]] as const) {
      for (const [type, byName] of Object.entries<Json>(parsed[kind] ?? {})) {
        target[type] ??= {}
        for (const [id, bodies] of Object.entries<Json>(byName)) target[type][id] = bodies[0]
      }
    }
    for (const [id, bodies] of Object.entries<Json>(parsed.variable ?? {})) config.variables[id] = bodies[0]
    for (const [id, bodies] of Object.entries<Json>(parsed.output ?? {})) config.outputs[id] = bodies[0]
    for (const block of parsed.locals ?? []) Object.assign(config.locals, block)
    for (const [id, bodies] of Object.entries<Json>(parsed.provider ?? {})) config.providers[id] = [...(config.providers[id] ?? []), ...bodies]
    config.terraform.push(...(parsed.terraform ?? []))
  }
  return config
}

// ---------------------------------------------------------------------------
// A very small evaluator: literal values, whole-value references to local.* and var.*
// (their defaults), and tostring(). Anything else stays the expression text.
// ---------------------------------------------------------------------------

function makeResolver (config: Config): (value: unknown) => unknown {
  const lookup = (path: string[]): unknown => {
    const [head, ...rest] = path
    let value: unknown
    if (head === 'local') {
      value = resolve(config.locals[rest.shift() ?? ''])
    } else if (head === 'var') {
      value = config.variables[rest.shift() ?? '']?.default
    } else {
      return undefined
    }
    for (const key of rest) value = (value as Record<string, unknown> | undefined)?.[key]
    return resolve(value)
  }
  const resolve = (value: unknown): unknown => {
    if (typeof value !== 'string') return value
    const expr = /^\$\{([^{}]*)\}$/.exec(value)?.[1]?.trim()
    if (expr === undefined) return value
    const ref = /^(local|var)((?:\.[A-Za-z0-9_-]+)+)$/.exec(expr)
    if (ref !== null) {
      const found = lookup([ref[1]!, ...ref[2]!.slice(1).split('.')])
      return found === undefined ? value : found
    }
    const str = /^tostring\((.+)\)$/.exec(expr)
    if (str !== null) {
      const inner = resolve('${' + str[1] + '}')
      return typeof inner === 'string' && inner.startsWith('${') ? value : String(inner)
    }
    return value
  }
  return resolve
}

// container_definitions = jsonencode([...]): parse the HCL inside jsonencode() as a value.
async function containerDefinitions (expression: string): Promise<Json[]> {
  const inner = /^\$\{jsonencode\(([\s\S]*)\)\}$/.exec(expression)?.[1]
  if (inner === undefined) throw new Error(`container_definitions is not jsonencode([...]): ${expression.slice(0, 80)}`)
  const parsed: Json = await parse('container_definitions.tf', `value = ${inner}\n`)
  return parsed.value
}

function asList (value: unknown): unknown[] {
  if (value === undefined || value === null) return []
  return Array.isArray(value) ? value : [value]
}

// ---------------------------------------------------------------------------
// Dockerfile: instructions of each stage, continuation lines joined.
// ---------------------------------------------------------------------------

interface Instruction { op: string, args: string }

function dockerStages (text: string): Instruction[][] {
  const logical: string[] = []
  let current = ''
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd()
    if (current === '' && /^\s*#/.test(line)) continue // comment (not inside a continuation)
    if (/^\s*#/.test(line)) continue // comment lines inside a RUN continuation are dropped by Docker too
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' '
      continue
    }
    current += line
    if (current.trim() !== '') logical.push(current.trim())
    current = ''
  }
  if (current.trim() !== '') logical.push(current.trim())
  const stages: Instruction[][] = []
  for (const line of logical) {
    const match = /^([A-Za-z]+)\s+([\s\S]*)$/.exec(line)
    if (match === null) continue
    const instruction = { op: match[1]!.toUpperCase(), args: match[2]!.trim() }
    if (instruction.op === 'FROM') stages.push([])
    stages.at(-1)?.push(instruction)
  }
  return stages
}

function execForm (args: string): string[] | null {
  try {
    const value: unknown = JSON.parse(args)
    return Array.isArray(value) && value.every(v => typeof v === 'string') ? value : null
  } catch {
    return null
  }
}

// ---------------------------------------------------------------------------

const config = await loadConfig()
const resolve = makeResolver(config)
const res = config.resources

function resource (type: string, name: string): Json {
  const body = res[type]?.[name]
  if (body === undefined) throw new Error(`deploy/*.tf has no ${type}.${name}`)
  return body
}

t.test('the deploy/ files exist and parse', async t => {
  for (const f of ['versions.tf', 'variables.tf', 'outputs.tf', 'terraform.tfvars.example', 'README.md']) {
    t.ok(existsSync(join(deployDir, f)), `deploy/${f} exists`)
  }
  t.ok(config.files.size >= 4, 'several .tf files')
  const aws = config.terraform.flatMap(b => asList(b.required_providers)).map((p: Json) => p.aws).find(Boolean)
  t.equal(aws?.source, 'hashicorp/aws', 'the AWS provider is required')
  t.match(String(aws?.version), /(~>\s*[56]|>=\s*5)/, 'AWS provider 5.x or 6.x')
})

t.test('no region literal anywhere: the region is a variable without default', async t => {
  for (const [name, text] of config.files) {
    const literal = text.split('\n').map((line, i) => ({ line: line.replace(/#.*$/, ''), n: i + 1 }))
      .filter(({ line }) => /^\s*(region|awslogs-region|region_name)\s*=\s*"(?!\$\{)/.test(line))
    t.same(literal, [], `${name}: no region = "..." literal`)
    t.notMatch(text.replace(/#.*$/gm, ''), /"(us|eu|ap|sa|ca|me|af|il|mx)-(north|south|east|west|central|northeast|southeast|northwest|southwest)-\d"/,
      `${name}: no region code in a string`)
  }
  t.ok(config.variables.region !== undefined, 'variable "region" exists')
  t.equal(config.variables.region?.default, undefined, 'variable "region" has no default')
  const provider = config.providers.aws?.[0]
  t.equal(provider?.region, '${var.region}', 'provider "aws" uses var.region')
  t.ok(provider?.default_tags?.[0]?.tags !== undefined, 'provider "aws" sets default_tags')
})

t.test('tasks keep idle connections longer than the ALB does (no 502 from a connection closed under a request)', async t => {
  const idle = Number(resolve(resource('aws_lb', 'this').idle_timeout))
  t.ok(idle > 0, `ALB idle_timeout ${idle} s`)
  t.ok(KEEP_ALIVE_TIMEOUT_MS > idle * 1000, `keepAliveTimeout ${KEEP_ALIVE_TIMEOUT_MS} ms > ${idle * 1000} ms`)
})

t.test('ALB target group: ip targets on 3000, /health answering 200', async t => {
  const tg = resource('aws_lb_target_group', 'api')
  t.equal(tg.target_type, 'ip', 'target_type ip (awsvpc tasks)')
  t.equal(resolve(tg.port), CONTAINER_PORT, 'target group port 3000')
  t.equal(tg.protocol, 'HTTP', 'target group protocol HTTP')
  const hc = tg.health_check?.[0]
  t.equal(hc?.path, HEALTH_PATH, 'health check path /health')
  t.equal(String(hc?.matcher), '200', 'health check matcher 200 (503 = unhealthy)')
  t.not(hc?.enabled, false, 'health check enabled')

  const http = resource('aws_lb_listener', 'http')
  t.equal(http.port, 80)
  const https = resource('aws_lb_listener', 'https')
  t.equal(https.port, 443)
  t.equal(https.protocol, 'HTTPS')
  t.match(https.count, /certificate_arn|https_enabled/, 'the HTTPS listener exists only with a certificate')
  t.match(JSON.stringify(http.default_action), /HTTP_301/, 'HTTP redirects to HTTPS when there is a certificate')
})

t.test('security groups: ALB open on 80/443 from the CIDR list, tasks only from the ALB on 3000', async t => {
  for (const [name, port] of [['alb_http', 80], ['alb_https', 443]] as const) {
    const rule = resource('aws_vpc_security_group_ingress_rule', name)
    t.equal(rule.from_port, port)
    t.equal(rule.to_port, port)
    t.match(rule.for_each, /var\.allowed_ingress_cidrs/, `${name} comes from var.allowed_ingress_cidrs`)
  }
  const ingressToTasks = Object.entries<Json>(res.aws_vpc_security_group_ingress_rule ?? {})
    .filter(([, r]) => r.security_group_id === '${aws_security_group.tasks.id}')
  t.equal(ingressToTasks.length, 1, 'one ingress rule on the tasks security group')
  const [, rule] = ingressToTasks[0] ?? []
  t.equal(rule?.referenced_security_group_id, '${aws_security_group.alb.id}', 'from the ALB security group')
  t.notOk(rule?.cidr_ipv4 ?? rule?.cidr_ipv6, 'not from a CIDR')
  t.equal(resolve(rule?.from_port), CONTAINER_PORT, 'tasks accept port 3000 only')
  t.equal(resolve(rule?.to_port), CONTAINER_PORT, 'tasks accept port 3000 only')
  t.notOk(res.aws_security_group?.tasks?.ingress, 'no inline ingress on the tasks security group')
})

const roles = ['api', 'ingest'] as const
const tfEnv = { ...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1' }
const findTerraform = (): string | undefined =>
  ['terraform', 'tofu'].find(b => spawnSync(b, ['version'], { stdio: 'ignore', env: tfEnv }).error === undefined)

t.test('task definitions: Fargate, port 3000, ROLE, health check, stopTimeout above the drain, awslogs', async t => {
  const common = resolve(config.locals.common_environment) as Record<string, unknown>
  const roleEnvironment = resolve(config.locals.role_environment) as Record<string, Record<string, unknown>>
  t.match(config.locals.environment, /merge\(local\.common_environment,\s*env\)/, 'each role environment = common + role_environment')
  t.match(config.locals.environment, /local\.role_environment/)
  t.match(config.locals.environment, /if v != null/, 'null values are left out of the environment')

  for (const role of roles) {
    t.test(role, async t => {
      const td = resource('aws_ecs_task_definition', role)
      t.same(td.requires_compatibilities, ['FARGATE'])
      t.equal(td.network_mode, 'awsvpc')
      t.equal(td.execution_role_arn, '${aws_iam_role.execution.arn}')
      t.equal(td.task_role_arn, '${aws_iam_role.task.arn}')
      const containers = await containerDefinitions(td.container_definitions)
      t.equal(containers.length, 1, 'one container')
      const c = containers[0]
      t.equal(c.essential, true)
      t.equal(c.image, '${var.image}')
      t.same(asList(c.portMappings).map((p: Json) => resolve(p.containerPort)), [CONTAINER_PORT], 'container port 3000')
      t.same(asList(c.portMappings).map((p: Json) => resolve(p.hostPort) ?? CONTAINER_PORT), [CONTAINER_PORT], 'host port 3000 (awsvpc)')

      t.equal(c.environment, `\${local.environment.${role}}`, 'environment comes from local.environment')
      const env = Object.fromEntries(Object.entries({ ...common, ...roleEnvironment[role] }).map(([k, v]) => [k, resolve(v)]))
      t.equal(env.ROLE, role, `ROLE=${role}`)
      t.equal(env.PORT, String(CONTAINER_PORT), 'PORT=3000')
      t.equal(env.HOST, '0.0.0.0')
      t.equal(env.COLLECTOR, 'off', 'no host collector inside Fargate')
      t.equal(env.LOG_REQUESTS, String(config.variables.log_requests?.default), 'LOG_REQUESTS from var.log_requests (default true)')
      t.equal(env.AWS_REGION, '${var.region}')
      t.match(String(env.DYNAMODB_TABLE), /aws_dynamodb_table\.this\.name|var\.table_name/)
      t.notOk('KAFKA_SASL_PASSWORD' in env, 'the SASL password is never a plain environment value')

      const stopTimeout = Number(resolve(c.stopTimeout))
      const shutdownMs = Number(env.SHUTDOWN_TIMEOUT_MS)
      t.ok(Number.isFinite(shutdownMs) && shutdownMs > 0, `SHUTDOWN_TIMEOUT_MS is set (${String(env.SHUTDOWN_TIMEOUT_MS)})`)
      t.ok(stopTimeout > shutdownMs / 1000, `stopTimeout ${stopTimeout}s > SHUTDOWN_TIMEOUT_MS ${shutdownMs}ms`)
      t.ok(stopTimeout * 1000 - shutdownMs >= 2000, 'at least 2 s of margin between the drain and SIGKILL')
      t.ok(stopTimeout <= FARGATE_MAX_STOP_TIMEOUT, 'Fargate allows at most 120 s')

      const hc = resolve(c.healthCheck) as Json
      const command = asList(hc?.command).map(resolve).map(String)
      t.equal(command[0], 'CMD', 'exec-form health check')
      t.equal(command[1], 'node', 'probes with node (no curl in slim images)')
      t.match(command.join(' '), /fetch\(.*127\.0\.0\.1.*\/health/, 'fetches /health on loopback')

      const log = c.logConfiguration
      t.equal(log?.logDriver, 'awslogs')
      t.equal(log?.options?.['awslogs-group'], '${aws_cloudwatch_log_group.this.name}')
      t.equal(log?.options?.['awslogs-region'], '${var.region}')
      t.equal(log?.options?.['awslogs-stream-prefix'], role)

      t.notOk('API_KEYS' in env, 'API_KEYS is never a plain environment value')
      t.match(config.locals.api_keys_secrets, /name\s*=\s*"API_KEYS",\s*valueFrom\s*=\s*var\.api_keys_secret_arn/, 'API_KEYS from Secrets Manager')
      if (role === 'api') {
        t.equal(c.secrets, '${local.api_keys_secrets}', 'the api role gets only the API keys secret')
        t.equal(env.RATE_LIMIT_PER_MINUTE, '${var.rate_limit_per_minute == null ? null : tostring(var.rate_limit_per_minute)}')
      } else {
        t.equal(c.secrets, '${concat(local.kafka_secrets, local.api_keys_secrets)}', 'ingest gets the Kafka secret and the API keys through `secrets`')
        t.match(config.locals.kafka_secrets, /name\s*=\s*"KAFKA_SASL_PASSWORD",\s*valueFrom\s*=\s*var\.kafka_sasl_password_secret_arn/)
        for (const key of ['KAFKA_BROKERS', 'KAFKA_TOPICS', 'KAFKA_GROUP_ID', 'KAFKA_DLQ_TOPIC', 'KAFKA_SECURITY_PROTOCOL', 'KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME']) {
          t.ok(key in env, `ingest sets ${key}`)
        }
      }
    })
  }
})

t.test('services: Fargate in private subnets, circuit breaker with rollback, api behind the ALB', async t => {
  for (const role of roles) {
    const svc = resource('aws_ecs_service', role)
    t.equal(svc.task_definition, `\${aws_ecs_task_definition.${role}.arn}`, `${role} runs its own task definition`)
    t.equal(svc.launch_type, 'FARGATE')
    const breaker = svc.deployment_circuit_breaker?.[0]
    t.equal(breaker?.enable, true, `${role}: circuit breaker on`)
    t.equal(breaker?.rollback, true, `${role}: rollback on`)
    const net = svc.network_configuration?.[0]
    t.equal(net?.subnets, '${local.private_subnet_ids}', `${role}: private subnets`)
    t.same(net?.security_groups, ['${aws_security_group.tasks.id}'])
    t.match(String(resolve(config.locals.assign_public_ip)), /local\.create_vpc \? false/, 'no public IP in the created VPC')
    t.match(JSON.stringify(svc.lifecycle ?? []), /desired_count/, `${role}: autoscaling owns desired_count`)
  }
  const api = resource('aws_ecs_service', 'api')
  const lb = api.load_balancer?.[0]
  t.equal(lb?.target_group_arn, '${aws_lb_target_group.api.arn}')
  t.equal(lb?.container_name, 'api', 'the ALB routes to the api container')
  t.equal(resolve(lb?.container_port), CONTAINER_PORT, 'the ALB routes to port 3000')
  t.equal(resource('aws_ecs_service', 'ingest').load_balancer, undefined, 'ingest is not behind the ALB')

  const cluster = resource('aws_ecs_cluster', 'this')
  t.equal(cluster.setting?.[0]?.name, 'containerInsights')
})

t.test('autoscaling: api on ALBRequestCountPerTarget, ingest on CPU', async t => {
  const api = resource('aws_appautoscaling_policy', 'api_requests')
  const apiMetric = api.target_tracking_scaling_policy_configuration?.[0]?.predefined_metric_specification?.[0]
  t.equal(api.policy_type, 'TargetTrackingScaling')
  t.equal(apiMetric?.predefined_metric_type, 'ALBRequestCountPerTarget')
  t.equal(apiMetric?.resource_label, '${aws_lb.this.arn_suffix}/${aws_lb_target_group.api.arn_suffix}')
  t.match(resource('aws_appautoscaling_target', 'api').resource_id, /aws_ecs_service\.api\.name/)

  const ingest = resource('aws_appautoscaling_policy', 'ingest_cpu')
  const ingestMetric = ingest.target_tracking_scaling_policy_configuration?.[0]?.predefined_metric_specification?.[0]
  t.equal(ingest.policy_type, 'TargetTrackingScaling')
  t.equal(ingestMetric?.predefined_metric_type, 'ECSServiceAverageCPUUtilization')
  t.match(resource('aws_appautoscaling_target', 'ingest').resource_id, /aws_ecs_service\.ingest\.name/)
  for (const v of ['api_min_count', 'api_max_count', 'api_desired_count', 'ingest_min_count', 'ingest_max_count', 'ingest_desired_count']) {
    t.ok(config.variables[v] !== undefined, `variable ${v}`)
  }
})

t.test('DynamoDB table: keys, index, on-demand, PITR, SSE, TTL on expires_at with retention', async t => {
  const table = resource('aws_dynamodb_table', 'this')
  t.equal(table.name, '${var.table_name}')
  t.equal(config.variables.table_name?.default, 'sensors_data')
  t.equal(table.billing_mode, 'PAY_PER_REQUEST', 'on-demand billing')
  t.equal(table.hash_key, TABLE.hash, 'table hash key device')
  t.equal(table.range_key, TABLE.range, 'table range key sk')
  const attributes = Object.fromEntries(asList(table.attribute).map((a: Json) => [a.name, a.type]))
  t.same(attributes, { device: 'S', sk: 'S', feed: 'S', fleet: 'S' }, 'exactly the key attributes, all strings')

  const gsi = asList(table.global_secondary_index).find((g: Json) => g.name === TABLE.index) as Json
  t.ok(gsi, `GSI ${TABLE.index}`)
  // Either the classic attributes or AWS provider 6's key_schema blocks.
  const keySchema = asList(gsi?.key_schema)
  const hash = gsi?.hash_key ?? (keySchema.find((k: Json) => k.key_type === 'HASH') as Json)?.attribute_name
  const range = gsi?.range_key ?? (keySchema.find((k: Json) => k.key_type === 'RANGE') as Json)?.attribute_name
  t.equal(hash, TABLE.indexHash, 'GSI hash key feed')
  t.equal(range, TABLE.indexRange, 'GSI range key sk')
  t.equal(gsi?.projection_type, 'ALL', 'GSI projects ALL')

  // The sparse fleet index over the status items (storage/table.ts FLEET_INDEX).
  const fleet = asList(table.global_secondary_index).find((g: Json) => g.name === FLEET_INDEX.name) as Json
  t.ok(fleet, `GSI ${FLEET_INDEX.name}`)
  const fleetKeys = asList(fleet?.key_schema)
  t.equal(fleet?.hash_key ?? (fleetKeys.find((k: Json) => k.key_type === 'HASH') as Json)?.attribute_name, FLEET_INDEX.hash, 'fleet index hash key fleet')
  t.equal(fleet?.range_key ?? (fleetKeys.find((k: Json) => k.key_type === 'RANGE') as Json)?.attribute_name, FLEET_INDEX.range, 'fleet index range key device')
  t.equal(fleet?.projection_type, 'ALL')

  t.equal(table.point_in_time_recovery?.[0]?.enabled, true, 'PITR on')
  const sse = table.server_side_encryption?.[0]
  t.equal(sse?.enabled, true, 'SSE on')
  t.equal(sse?.kms_key_arn, '${var.dynamodb_kms_key_arn}', 'optional customer KMS key')
  t.equal(config.variables.dynamodb_kms_key_arn?.default, null)

  const ttl = table.ttl?.[0]
  t.equal(resolve(config.locals.ttl_attribute), 'expires_at')
  t.match(String(config.locals.ttl_enabled), /var\.retention_days != null/, 'TTL follows var.retention_days')
  t.equal(ttl?.enabled, '${local.ttl_enabled}')
  t.match(String(resolve(config.locals.common_environment.RETENTION_DAYS)), /var\.retention_days/, 'RETENTION_DAYS comes from the same variable')
})

t.test('IAM: task role has exactly the DynamoDB actions the code sends, on the table and its indexes', async t => {
  const doc = config.data.aws_iam_policy_document?.task_dynamodb
  t.ok(doc, 'data.aws_iam_policy_document.task_dynamodb')
  const statements = asList(doc?.statement) as Json[]
  const actions = statements.flatMap(s => asList(resolve(s.actions))).map(String)
  t.same(actions.filter(a => a.startsWith('dynamodb:')).sort(), DYNAMODB_ACTIONS, `exactly ${DYNAMODB_ACTIONS.join(', ')}`)
  t.same(actions.filter(a => !a.startsWith('dynamodb:')), [], 'no other statement outside a dynamic block')
  for (const s of statements) {
    const resources = asList(s.resources).map(String)
    t.same(resources, ['${aws_dynamodb_table.this.arn}', '${aws_dynamodb_table.this.arn}/index/*'], 'the table and its indexes')
    t.equal(s.effect ?? 'Allow', 'Allow')
  }
  // The optional KMS statement (customer managed table key) is scoped to that key.
  for (const d of asList(doc?.dynamic?.statement) as Json[]) {
    const content = d.content?.[0]
    t.same(content?.resources, ['${var.dynamodb_kms_key_arn}'], 'KMS only on the table key')
    t.ok(asList(content?.actions).every(a => String(a).startsWith('kms:')), 'only kms: actions in the dynamic statement')
  }

  // Nothing else is attached to the task role.
  const onTask = (r: Json): boolean => r.role === '${aws_iam_role.task.id}' || r.role === '${aws_iam_role.task.name}'
  const inline = Object.values<Json>(res.aws_iam_role_policy ?? {}).filter(onTask)
  t.equal(inline.length, 1, 'one inline policy on the task role')
  t.equal(inline[0]?.policy, '${data.aws_iam_policy_document.task_dynamodb.json}')
  t.same(Object.values<Json>(res.aws_iam_role_policy_attachment ?? {}).filter(onTask), [], 'no managed policy on the task role')
})

t.test('IAM: execution role = managed policy + the configured secret only; no "*" resource anywhere', async t => {
  const attach = resource('aws_iam_role_policy_attachment', 'execution_managed')
  t.equal(attach.role, '${aws_iam_role.execution.name}')
  t.match(attach.policy_arn, /:iam::aws:policy\/service-role\/AmazonECSTaskExecutionRolePolicy$/)
  const secrets = config.data.aws_iam_policy_document?.execution_secrets
  const contents = asList(secrets?.dynamic?.statement).map((d: Json) => d.content?.[0])
  const byAction = Object.fromEntries(contents.flatMap((c: Json) => asList(c.actions).map(a => [String(a), c.resources])))
  const resourcesOf = (action: string): unknown[] => contents.filter((c: Json) => asList(c.actions).includes(action)).flatMap((c: Json) => asList(c.resources))
  t.same(resourcesOf('secretsmanager:GetSecretValue'), ['${local.kafka_secret_resource}', '${local.api_keys_secret_resource}'])
  t.same(resourcesOf('ssm:GetParameters'), ['${local.kafka_secret_resource}', '${local.api_keys_secret_resource}'])
  t.same(byAction['kms:Decrypt'], ['${var.secrets_kms_key_arn}'])
  t.match(JSON.stringify(contents.find((c: Json) => asList(c.actions).includes('kms:Decrypt'))), /kms:ViaService/)

  // Every policy document and inline JSON policy in deploy/.
  const all: Json[] = []
  for (const d of Object.values<Json>(config.data.aws_iam_policy_document ?? {})) {
    all.push(...asList(d.statement), ...asList(d.dynamic?.statement).map((s: Json) => s.content?.[0]))
  }
  t.ok(all.length >= 4, 'policy statements found')
  for (const s of all) {
    for (const r of asList(resolve(s.resources))) t.not(String(r).trim(), '*', `no "*" resource (${JSON.stringify(s.actions)})`)
    t.notOk(asList(resolve(s.actions)).some(a => a === '*' || /^[a-z0-9-]+:\*$/.test(String(a))), 'no wildcard action')
    t.equal(s.not_resources, undefined)
  }
  for (const [name, text] of config.files) t.notMatch(text, /"Resource"\s*:\s*"\*"/, `${name}: no raw JSON policy on "*"`)
})

t.test('logs: CloudWatch log group with retention', async t => {
  const group = resource('aws_cloudwatch_log_group', 'this')
  t.equal(group.retention_in_days, '${var.log_retention_days}')
  t.ok(Number(config.variables.log_retention_days?.default) > 0, 'retention has a default')
})

t.test('network: optional VPC, NAT choice, tasks without public IP', async t => {
  for (const v of ['vpc_id', 'public_subnet_ids', 'private_subnet_ids']) {
    t.equal(config.variables[v]?.default, null, `${v} defaults to null (create a VPC)`)
  }
  t.ok(config.variables.nat_gateway_per_az, 'variable nat_gateway_per_az')
  t.match(resource('aws_nat_gateway', 'this').count, /local\.nat_count/)
  t.match(String(config.locals.nat_count), /var\.nat_gateway_per_az \? length\(local\.azs\) : 1/)
  t.match(String(config.locals.azs), /data\.aws_availability_zones\.available\.names, 0, 2/, 'two AZs')
  t.ok(config.variables.allowed_ingress_cidrs, 'variable allowed_ingress_cidrs')
  t.ok(config.variables.certificate_arn, 'variable certificate_arn')
})

t.test('HTTPS by default: a certificate or an explicit allow_plain_http; port 80 only redirects then', async t => {
  t.equal(config.variables.certificate_arn?.default, null)
  t.equal(config.variables.allow_plain_http?.default, false, 'plain HTTP only when asked for')
  const conditions = asList(resource('aws_lb', 'this').lifecycle?.[0]?.precondition).map((p: Json) => String(p.condition))
  t.ok(conditions.some(c => /var\.certificate_arn != null \|\| var\.allow_plain_http/.test(c)), 'the ALB refuses to plan without either')
  t.match(JSON.stringify(resource('aws_lb_listener', 'http').default_action), /local\.https_enabled \? \\?"redirect\\?"/, 'with a certificate port 80 redirects')
})

t.test('ALB: deletion protection on by default, access logs to an encrypted, private S3 bucket with a lifecycle rule', async t => {
  t.equal(config.variables.alb_deletion_protection?.default, true)
  const lb = resource('aws_lb', 'this')
  t.equal(lb.access_logs?.[0]?.bucket, '${aws_s3_bucket.access_logs.id}')
  t.equal(lb.access_logs?.[0]?.enabled, true)
  const block = resource('aws_s3_bucket_public_access_block', 'access_logs')
  for (const k of ['block_public_acls', 'block_public_policy', 'ignore_public_acls', 'restrict_public_buckets']) t.equal(block[k], true, k)
  t.match(JSON.stringify(resource('aws_s3_bucket_server_side_encryption_configuration', 'access_logs')), /AES256/, 'SSE-S3 (what ALB log delivery supports)')
  const rule = resource('aws_s3_bucket_lifecycle_configuration', 'access_logs').rule?.[0]
  t.equal(rule?.status, 'Enabled')
  t.equal(rule?.expiration?.[0]?.days, '${var.access_logs_retention_days}')
})

t.test('/metrics is not reachable through the ALB: a listener rule answers 404 first', async t => {
  const r = resource('aws_lb_listener_rule', 'block_metrics')
  t.match(r.listener_arn, /aws_lb_listener\.https\[0\]\.arn/)
  t.same(r.condition?.[0]?.path_pattern?.[0]?.values, ['/metrics', '/metrics/*'])
  t.equal(r.action?.[0]?.type, 'fixed-response')
  t.equal(String(r.action?.[0]?.fixed_response?.[0]?.status_code), '404')
})

t.test('optional WAF: a rate-based rule per client address, associated with the ALB', async t => {
  t.equal(config.variables.waf_rate_limit?.default, null, 'off unless waf_rate_limit is set')
  const acl = resource('aws_wafv2_web_acl', 'this')
  t.match(acl.count, /var\.waf_rate_limit == null \? 0 : 1/)
  t.equal(acl.rule?.[0]?.statement?.[0]?.rate_based_statement?.[0]?.limit, '${var.waf_rate_limit}')
  t.equal(acl.rule?.[0]?.statement?.[0]?.rate_based_statement?.[0]?.aggregate_key_type, 'IP')
  t.equal(resource('aws_wafv2_web_acl_association', 'this').resource_arn, '${aws_lb.this.arn}')
})

t.test('every checkov waiver in deploy/ says why', async t => {
  let waivers = 0
  for (const [name, text] of config.files) {
    for (const m of text.matchAll(/#\s*checkov:skip=([A-Z0-9_]+)(.*)$/gm)) {
      waivers++
      t.match(m[2], /^:\s*\S.{10,}/, `${name}: ${m[1]} has a reason`)
    }
  }
  t.ok(waivers > 0, `${waivers} waivers`)
})

t.test('outputs', async t => {
  for (const o of ['alb_dns_name', 'docs_url', 'table_name', 'cluster_name', 'log_group_name']) t.ok(config.outputs[o], `output ${o}`)
  t.match(config.outputs.docs_url?.value, /\/docs"?\}?$/)
})

t.test('terraform.tfvars.example sets every required variable and only declared ones', async t => {
  const text = await readFile(join(deployDir, 'terraform.tfvars.example'), 'utf8')
  const values: Json = await parse('terraform.tfvars', text)
  for (const key of Object.keys(values)) t.ok(config.variables[key] !== undefined, `${key} is a declared variable`)
  const required = Object.entries<Json>(config.variables).filter(([, v]) => !('default' in v)).map(([k]) => k)
  t.ok(required.includes('region') && required.includes('image'), 'region and image are required')
  for (const key of required) t.ok(key in values, `example sets required ${key}`)
  t.notMatch(text, /kafka_sasl_password\s*=/, 'no password in the example, only the secret ARN')
})

const terraformBinary = findTerraform()

t.test('terraform fmt -check', {
  skip: terraformBinary === undefined ? 'neither terraform nor tofu is on PATH (no package registry reachable here ships one): formatting not checked' : false
}, async t => {
  const binary = terraformBinary ?? 'terraform'
  const run = spawnSync(binary, ['fmt', '-check', '-recursive', '-diff', '-no-color', deployDir], { encoding: 'utf8', env: tfEnv })
  t.equal(run.status, 0, `${binary} fmt -check deploy/ (run \`${binary} fmt deploy\`)\n${run.stdout}${run.stderr}`)
})

t.test('terraform validate', { skip: process.env.TF_VALIDATE === '1' ? false : 'needs the hashicorp/aws provider from the Terraform registry, which this machine cannot reach: set TF_VALIDATE=1 where it can' }, async t => {
  const binary = terraformBinary
  if (binary === undefined) {
    t.fail('TF_VALIDATE=1 but neither terraform nor tofu is on PATH')
    return
  }
  const dir = await mkdtemp(join(tmpdir(), 'sensors-deploy-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await cp(deployDir, dir, { recursive: true, filter: src => !src.includes('.terraform') && !src.endsWith('.tfstate') })
  const init = spawnSync(binary, ['init', '-backend=false', '-input=false', '-no-color'], { cwd: dir, encoding: 'utf8', env: tfEnv })
  t.equal(init.status, 0, `${binary} init\n${init.stdout}${init.stderr}`)
  const validate = spawnSync(binary, ['validate', '-no-color'], { cwd: dir, encoding: 'utf8', env: tfEnv })
  t.equal(validate.status, 0, `${binary} validate\n${validate.stdout}${validate.stderr}`)
})

t.test('Dockerfile: a compile cache made by the runtime\'s user in the build stage, read by the runtime', async t => {
  const stages = dockerStages(await readFile(join(root, 'Dockerfile'), 'utf8'))
  const build = stages.slice(0, -1).flat()
  const final = stages.at(-1) ?? []
  const warm = build.findIndex(i => i.op === 'RUN' && /warm-compile-cache\.mjs/.test(i.args))
  t.ok(warm >= 0, 'the build stage runs tools/warm-compile-cache.mjs')
  const dir = /NODE_COMPILE_CACHE=(\S+)/.exec(build[warm]?.args ?? '')?.[1]
  t.ok(dir !== undefined, 'into NODE_COMPILE_CACHE')
  t.match(build[warm]?.args ?? '', new RegExp(`chmod -R a\\+rX ${dir ?? ''}`), 'made readable (Node writes its cache files 0600)')
  const buildUser = build.slice(0, warm).filter(i => i.op === 'USER').at(-1)?.args
  const runtimeUser = final.filter(i => i.op === 'USER').at(-1)?.args
  t.equal(buildUser?.split(':')[0], runtimeUser?.split(':')[0], 'as the runtime\'s uid (Node keeps one cache per uid)')
  t.ok(build.findIndex(i => i.op === 'RUN' && /npm prune --omit=dev/.test(i.args)) < warm, 'after npm prune: over the very files the runtime copies')
  const copy = final.find(i => i.op === 'COPY' && i.args.includes('--from=build') && i.args.includes(`/app/${dir ?? ''}`))
  t.ok(copy !== undefined, 'the runtime stage copies it')
  t.notMatch(copy?.args ?? '', /--chown/, 'root-owned at runtime: the service cannot rewrite it')
  const env = final.filter(i => i.op === 'ENV').map(i => i.args).join(' ')
  t.match(env, new RegExp(`NODE_COMPILE_CACHE=${dir ?? ''}\\b`), 'and points NODE_COMPILE_CACHE at it')
  t.equal(final.filter(i => i.op === 'WORKDIR').at(-1)?.args, '/app', 'relative to WORKDIR /app, as in the build stage')
})

t.test('Dockerfile: multi-stage, non-root, port 3000, /health check, node dist/server.js', async t => {
  const text = await readFile(join(root, 'Dockerfile'), 'utf8')
  const stages = dockerStages(text)
  t.ok(stages.length >= 2, 'multi-stage build')
  const froms = stages.map(s => s[0]?.args ?? '')
  for (const from of froms) {
    t.match(from, /^(--platform=\S+\s+)?node:(\d+)-bookworm(-slim)?(@sha256:[0-9a-f]{64})?(\s+AS\s+\S+)?$/i, `pinned by major LTS tag: ${from}`)
    t.notMatch(from, /:latest|:lts|:current/i, 'no floating tag')
  }
  const majors = new Set(froms.map(f => /node:(\d+)-/.exec(f)?.[1]))
  t.equal(majors.size, 1, 'build and runtime use the same Node.js major')
  const major = Number([...majors][0])
  t.ok(major >= 20 && major % 2 === 0, `Node.js ${major} is an LTS line`)

  const build = stages.slice(0, -1).flat()
  const buildRuns = build.filter(i => i.op === 'RUN').map(i => i.args).join('\n')
  t.match(buildRuns, /libssl-dev/, 'librdkafka built with SSL')
  t.match(buildRuns, /libsasl2-dev/, 'librdkafka built with SASL')
  t.match(buildRuns, /npm ci\b/, 'npm ci')
  t.notMatch(buildRuns, /--ignore-tools/, 'node-rdkafka\'s install script runs')
  t.match(buildRuns, /npm run build/)
  t.match(buildRuns, /npm prune --omit=dev/)

  const final = stages.at(-1) ?? []
  t.match(final[0]?.args ?? '', /-slim\b/, 'runtime stage is slim')
  const finalRuns = final.filter(i => i.op === 'RUN').map(i => i.args).join('\n')
  t.notMatch(finalRuns, /-dev\b|build-essential|python3/, 'no compilers or headers at runtime')
  t.match(finalRuns, /libssl3/, 'runtime has libssl3')
  t.match(finalRuns, /libsasl2-2/, 'runtime has libsasl2')
  t.match(finalRuns, /ca-certificates/, 'runtime trusts public CAs (SASL_SSL brokers)')

  const last = (op: string): Instruction | undefined => final.filter(i => i.op === op).at(-1)
  const user = last('USER')?.args
  t.ok(user !== undefined, 'runtime stage sets USER')
  t.notMatch(String(user), /^(root|0)(:|$)/, 'USER is not root')
  const exposed = final.filter(i => i.op === 'EXPOSE').flatMap(i => i.args.split(/\s+/)).map(p => p.replace(/\/tcp$/, ''))
  t.same(exposed, [String(CONTAINER_PORT)], 'EXPOSE 3000')
  t.same(execForm(last('CMD')?.args ?? ''), ['node', 'dist/server.js'], 'CMD ["node", "dist/server.js"] (exec form: SIGTERM reaches node)')
  const entrypoint = last('ENTRYPOINT')?.args
  t.ok(entrypoint === undefined || !/npm/.test(entrypoint), 'not started through npm')
  t.equal(last('STOPSIGNAL')?.args, 'SIGTERM')
  const healthcheck = last('HEALTHCHECK')?.args ?? ''
  t.match(healthcheck, /CMD/, 'HEALTHCHECK set')
  t.match(healthcheck, /127\.0\.0\.1.*\/health/, 'HEALTHCHECK hits /health on loopback')
  t.match(healthcheck, /\bnode\b/, 'HEALTHCHECK uses node (no curl in slim)')
  const probe = execForm(healthcheck.replace(/^[\s\S]*?\bCMD\s+/, ''))
  t.same(probe?.slice(0, 2), ['node', '-e'], 'exec-form HEALTHCHECK: node -e <probe>')
  t.equal(probe?.[2], resolve(config.locals.health_probe), 'the ECS container health check runs the same probe as the Dockerfile')
  const copied = final.filter(i => i.op === 'COPY').map(i => i.args).join('\n')
  for (const path of ['node_modules', 'dist', 'models', 'ui', 'package.json']) t.match(copied, new RegExp(path), `runtime copies ${path}`)
  const env = final.filter(i => i.op === 'ENV').map(i => i.args).join('\n')
  t.match(env, /PORT=3000/, 'PORT=3000')
  t.match(env, /HOST=0\.0\.0\.0/, 'HOST=0.0.0.0')
})

t.test('.dockerignore keeps local state and secrets out of the build context', async t => {
  const lines = (await readFile(join(root, '.dockerignore'), 'utf8')).split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  const has = (pattern: string): boolean => lines.some(l => l.replace(/^\//, '').replace(/\/$/, '').replace(/^\*\*\//, '') === pattern)
  for (const p of ['node_modules', 'dist', 'data', 'test', '.git', '.tap', 'coverage', '*.log', '.env*', 'deploy/.terraform', 'docs']) {
    t.ok(has(p), `.dockerignore has ${p}`)
  }
  for (const p of ['package.json', 'package-lock.json', 'models', 'tsconfig.json']) t.notOk(has(p), `${p} stays in the context`)
})
