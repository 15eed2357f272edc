{{/*
Names and labels.
*/}}
{{- define "memsvc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "memsvc.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "memsvc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; with a component ("api", "worker", ...) given as `dict "root" . "component" C`. */}}
{{- define "memsvc.labels" -}}
helm.sh/chart: {{ include "memsvc.chart" .root }}
{{ include "memsvc.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: memsvc
{{- end }}

{{- define "memsvc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "memsvc.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with .pool }}
memsvc.io/pool: {{ . }}
{{- end }}
{{- end }}

{{- define "memsvc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "memsvc.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: `dict "root" . "gpu" BOOL`. A digest pins the image whatever the tag. */}}
{{- define "memsvc.image" -}}
{{- $image := ternary .root.Values.gpuImage .root.Values.image (eq (toString .gpu) "true") }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/*
Connections. The chart's own Secret (`<fullname>`) holds them when dev databases are on or
`connections.existingSecret` is ""; otherwise the user's Secret does, under the configured keys.
*/}}
{{- define "memsvc.ownSecret" -}}
{{- if or .Values.devDatabases.enabled (not .Values.connections.existingSecret) }}true{{ end }}
{{- end }}

{{/* Migrations run as a Helm hook unless switched off, or the dev databases (ordinary resources) are on. */}}
{{- define "memsvc.hookMode" -}}
{{- if and .Values.migrations.useHelmHooks (not .Values.devDatabases.enabled) }}true{{ end }}
{{- end }}

{{/* `secretKeyRef` of a connection setting: `dict "root" . "setting" S` with S one of databaseUrl, brokerUrl,
adminKey, consolidationLlmApiKey. */}}
{{- define "memsvc.secretKeyRef" -}}
{{- $root := .root }}
{{- $values := $root.Values.connections }}
{{- $ownKeys := dict "databaseUrl" "database-url" "brokerUrl" "broker-url" "adminKey" "admin-key" "consolidationLlmApiKey" "consolidation-llm-api-key" }}
{{- if and (eq .setting "databaseUrl") $values.databaseUrlSecret.name (not $root.Values.devDatabases.enabled) }}
name: {{ $values.databaseUrlSecret.name }}
key: {{ $values.databaseUrlSecret.key }}
{{- else if include "memsvc.ownSecret" $root }}
name: {{ include "memsvc.fullname" $root }}
key: {{ get $ownKeys .setting }}
{{- else }}
name: {{ $values.existingSecret }}
key: {{ get $values (printf "%sKey" .setting) }}
{{- end }}
{{- end }}

{{/* Whether the openai backend's API key is configured anywhere. */}}
{{- define "memsvc.hasLlmApiKey" -}}
{{- if include "memsvc.ownSecret" . }}
{{- if .Values.connections.inline.consolidationLlmApiKey }}true{{ end }}
{{- else if .Values.connections.consolidationLlmApiKeyKey }}true{{ end }}
{{- end }}

{{/*
Environment of a memsvc container: `dict "root" . "component" C "extraEnv" LIST`. Connection settings always
come from Secrets (never inlined); the admin key only reaches the API.
*/}}
{{- define "memsvc.env" -}}
{{- $root := .root }}
- name: MEMSVC_DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- include "memsvc.secretKeyRef" (dict "root" $root "setting" "databaseUrl") | trim | nindent 6 }}
- name: MEMSVC_BROKER_URL
  valueFrom:
    secretKeyRef:
      {{- include "memsvc.secretKeyRef" (dict "root" $root "setting" "brokerUrl") | trim | nindent 6 }}
{{- if eq .component "api" }}
- name: MEMSVC_ADMIN_KEY
  valueFrom:
    secretKeyRef:
      {{- include "memsvc.secretKeyRef" (dict "root" $root "setting" "adminKey") | trim | nindent 6 }}
{{- end }}
{{- if include "memsvc.hasLlmApiKey" $root }}
- name: MEMSVC_CONSOLIDATION_LLM_API_KEY
  valueFrom:
    secretKeyRef:
      {{- include "memsvc.secretKeyRef" (dict "root" $root "setting" "consolidationLlmApiKey") | trim | nindent 6 }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with .extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Scheduling of a pod: `dict "root" . "values" COMPONENT_VALUES "gpu" GPU_VALUES_OR_NIL`. Each setting is the
component's when non-empty, the global one otherwise; GPU pools add their node selector and tolerations. */}}
{{- define "memsvc.scheduling" -}}
{{- $global := .root.Values }}
{{- $nodeSelector := deepCopy (default $global.nodeSelector .values.nodeSelector) }}
{{- $tolerations := default $global.tolerations .values.tolerations }}
{{- if and .gpu .gpu.enabled }}
{{- $nodeSelector = merge $nodeSelector .gpu.nodeSelector }}
{{- $tolerations = concat $tolerations .gpu.tolerations }}
{{- end }}
{{- with $nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $global.affinity .values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if hasKey .values "topologySpreadConstraints" }}
{{- with (default $global.topologySpreadConstraints .values.topologySpreadConstraints) }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- with (default $global.priorityClassName .values.priorityClassName) }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every memsvc pod. */}}
{{- define "memsvc.podSpecCommon" -}}
serviceAccountName: {{ include "memsvc.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/* Resources: the component's, the global ones when it has none; GPU pools add their GPU limit. */}}
{{- define "memsvc.resources" -}}
{{- $resources := deepCopy (default .root.Values.resources .values.resources) }}
{{- if and .gpu .gpu.enabled }}
{{- $limits := default dict $resources.limits }}
{{- $_ := set $limits .gpu.resourceName (int .gpu.count) }}
{{- $_ := set $resources "limits" $limits }}
{{- end }}
{{- toYaml $resources }}
{{- end }}

{{/* Volumes every memsvc pod has: a writable /tmp (the root filesystem is read-only), the models volume. */}}
{{- define "memsvc.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .root.Values.models.existingClaim }}
- name: models
  persistentVolumeClaim:
    claimName: {{ .root.Values.models.existingClaim }}
    readOnly: true
{{- end }}
{{- with .extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "memsvc.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .root.Values.models.existingClaim }}
- name: models
  mountPath: {{ .root.Values.models.mountPath }}
  readOnly: true
  {{- with .root.Values.models.subPath }}
  subPath: {{ . }}
  {{- end }}
{{- end }}
{{- with .extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod annotations: config and Secret checksums (pods restart when they change), global and component ones. */}}
{{- define "memsvc.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- with .podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The init container that waits until another process (the migration Job) has brought the schema to the
image's head: `dict "root" . "gpu" BOOL`. */}}
{{- define "memsvc.waitForMigrations" -}}
{{- $root := .root }}
- name: wait-for-migrations
  image: {{ include "memsvc.image" (dict "root" $root "gpu" .gpu) }}
  imagePullPolicy: {{ (ternary $root.Values.gpuImage $root.Values.image (eq (toString .gpu) "true")).pullPolicy }}
  command: ["memsvc", "migrate", "--wait", "--timeout", {{ $root.Values.migrations.wait.timeoutSeconds | quote }}]
  env:
    - name: MEMSVC_DATABASE_URL
      valueFrom:
        secretKeyRef:
          {{- include "memsvc.secretKeyRef" (dict "root" $root "setting" "databaseUrl") | trim | nindent 10 }}
  resources:
    {{- toYaml $root.Values.migrations.wait.resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end }}

{{/* Refuse contradictory or incomplete settings with a message that says what to set. */}}
{{- define "memsvc.validate" -}}
{{- $c := .Values.connections }}
{{- $inline := $c.inline }}
{{- if not .Values.devDatabases.enabled }}
{{- if and $c.existingSecret (or $inline.databaseUrl $inline.brokerUrl $inline.adminKey $inline.consolidationLlmApiKey) }}
{{- fail "connections: both existingSecret and inline values are set. Keep the Secret (and remove connections.inline.*), or set connections.existingSecret=\"\" to use the inline fallback." }}
{{- end }}
{{- if not $c.existingSecret }}
{{- if not (or $inline.databaseUrl $c.databaseUrlSecret.name) }}
{{- fail "connections: no database URL. Set connections.existingSecret (recommended, see README), connections.databaseUrlSecret.name, or connections.inline.databaseUrl; or devDatabases.enabled=true to try the chart." }}
{{- end }}
{{- if not $inline.brokerUrl }}
{{- fail "connections: no broker URL. Set connections.existingSecret (recommended) or connections.inline.brokerUrl; or devDatabases.enabled=true to try the chart." }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.keda.enabled (not .Values.keda.redis.address) (not .Values.devDatabases.enabled) }}
{{- fail "keda: set keda.redis.address (host:port of the broker's Redis as KEDA reaches it)." }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) }}
{{- fail "ingress: enabled without hosts." }}
{{- end }}
{{- end }}
