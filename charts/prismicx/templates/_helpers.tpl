{{/*
Names, labels and the values every template shares.
*/}}

{{/* The chart name (nameOverride wins). */}}
{{- define "prismicx.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every release-owned resource name: fullnameOverride, else the release name, with
the chart name appended when the release name does not already contain it.
*/}}
{{- define "prismicx.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "prismicx.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. Call with (dict "ctx" $ "component" "operator"). */}}
{{- define "prismicx.labels" -}}
helm.sh/chart: {{ include "prismicx.chart" .ctx }}
{{ include "prismicx.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: prismicx
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: stable across upgrades (never add a label here that can change). */}}
{{- define "prismicx.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prismicx.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "prismicx.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (printf "%s-operator" (include "prismicx.fullname" .)) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag}; an empty tag means the chart's appVersion. */}}
{{- define "prismicx.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}

{{/*
The six services: values key → spec.service, Kubernetes name (DESIGN.md section 2). The
DatabaseService is named after the Kubernetes name.
*/}}
{{- define "prismicx.serviceKinds" -}}
tenantMgmt: {service: tenant-mgmt, k8sName: tenant-mgmt-service}
userData: {service: user-data, k8sName: user-data-service}
taskRepo: {service: task-repo, k8sName: task-repo-service}
categoryRepository: {service: category-repository, k8sName: category-repository-service}
managementSystemRepo: {service: management-system-repo, k8sName: management-system-repo}
vectorStore: {service: vector-store, k8sName: vector-store-service}
{{- end }}

{{/*
A value kept across upgrades: the existing Secret's key when the Secret exists (lookup; empty
under `helm template`), else 32 random alphanumeric characters. Alphanumeric so the value can
go into URIs unescaped. Call with (dict "ctx" $ "name" "secret-name" "key" "password").
*/}}
{{- define "prismicx.generatedValue" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- index $existing.data .key | b64dec }}
{{- else }}
{{- randAlphaNum 32 }}
{{- end }}
{{- end }}

{{/*
Whether the DatabaseServices can be part of this render: Helm maps every object of a release to
an API before it creates any, so on the install that creates the CRDs (crds.enabled and the
DatabaseService API not served yet) a DatabaseService would fail the whole install ("ensure CRDs
are installed first"). They are left out then and created by the next `helm upgrade`. With
crds.enabled false the CRDs must exist beforehand, and a missing one fails with Helm's message.
*/}}
{{- define "prismicx.databaseServicesRenderable" -}}
{{- if or (not .Values.crds.enabled) (.Capabilities.APIVersions.Has "prismicx.io/v1alpha1/DatabaseService") }}true{{ end }}
{{- end }}

{{/* The platform API key Secret (existing or generated). */}}
{{- define "prismicx.apiKeySecretName" -}}
{{- default (printf "%s-platform" (include "prismicx.fullname" .)) .Values.platformApiKey.existingSecret }}
{{- end }}

{{/* The PgBouncer admin Secret (existing or generated). */}}
{{- define "prismicx.pgbouncerSecretName" -}}
{{- default (printf "%s-pgbouncer" (include "prismicx.fullname" .)) .Values.pgbouncer.admin.existingSecret }}
{{- end }}

{{/*
Where the data servers are, as the operator and the tenants reach them. In-cluster: the
Services of DESIGN.md section 2, fully qualified with the release namespace so tenants and
services in other namespaces resolve them. External: the values, required.
*/}}
{{- define "prismicx.svcHost" -}}
{{- printf "%s.%s.svc" .name .ctx.Release.Namespace }}
{{- end }}

{{- define "prismicx.postgres.host" -}}
{{- if .Values.databases.inCluster }}
{{- include "prismicx.svcHost" (dict "ctx" . "name" "postgres-system") }}
{{- else }}
{{- required "databases.external.postgres.host is required when databases.inCluster is false" .Values.databases.external.postgres.host }}
{{- end }}
{{- end }}

{{- define "prismicx.postgres.port" -}}
{{- if .Values.databases.inCluster }}5432{{ else }}{{ .Values.databases.external.postgres.port }}{{ end }}
{{- end }}

{{/* Secret with the PostgreSQL admin role: keys username, password. */}}
{{- define "prismicx.postgres.secretName" -}}
{{- if .Values.databases.inCluster }}
{{- printf "%s-postgres" (include "prismicx.fullname" .) }}
{{- else }}
{{- required "databases.external.postgres.existingSecret (keys username, password) is required when databases.inCluster is false" .Values.databases.external.postgres.existingSecret }}
{{- end }}
{{- end }}

{{/* Secret with mongodb-system's connection string: key uri. */}}
{{- define "prismicx.mongodbSystem.secretName" -}}
{{- if .Values.databases.inCluster }}
{{- printf "%s-mongodb-system" (include "prismicx.fullname" .) }}
{{- else }}
{{- required "databases.external.mongodbSystem.existingSecret (key uri) is required when databases.inCluster is false" .Values.databases.external.mongodbSystem.existingSecret }}
{{- end }}
{{- end }}

{{/* host:port of mongodb-system as the services reach it. */}}
{{- define "prismicx.mongodbSystem.address" -}}
{{- if .Values.databases.inCluster }}
{{- printf "%s:27018" (include "prismicx.svcHost" (dict "ctx" . "name" "mongodb-system")) }}
{{- else }}
{{- printf "%s:%v" (required "databases.external.mongodbSystem.host is required when databases.inCluster is false" .Values.databases.external.mongodbSystem.host) .Values.databases.external.mongodbSystem.port }}
{{- end }}
{{- end }}

{{/* Secret with mongodb-tenant's connection string: key uri. */}}
{{- define "prismicx.mongodbTenant.secretName" -}}
{{- if .Values.databases.inCluster }}
{{- printf "%s-mongodb-tenant" (include "prismicx.fullname" .) }}
{{- else }}
{{- required "databases.external.mongodbTenant.existingSecret (key uri) is required when databases.inCluster is false" .Values.databases.external.mongodbTenant.existingSecret }}
{{- end }}
{{- end }}

{{/* host:port of mongodb-tenant as tenants reach it (their Secret's mongodb-uri). */}}
{{- define "prismicx.mongodbTenant.address" -}}
{{- if .Values.databases.inCluster }}
{{- printf "%s:27017" (include "prismicx.svcHost" (dict "ctx" . "name" "mongodb-tenant")) }}
{{- else }}
{{- printf "%s:%v" (required "databases.external.mongodbTenant.host is required when databases.inCluster is false" .Values.databases.external.mongodbTenant.host) .Values.databases.external.mongodbTenant.port }}
{{- end }}
{{- end }}

{{/* Secret with Redis's URL: key url. */}}
{{- define "prismicx.redis.secretName" -}}
{{- if .Values.databases.inCluster }}
{{- printf "%s-redis" (include "prismicx.fullname" .) }}
{{- else }}
{{- required "databases.external.redis.existingSecret (key url) is required when databases.inCluster is false" .Values.databases.external.redis.existingSecret }}
{{- end }}
{{- end }}

{{/* The in-cluster address of PgBouncer (the operator's admin console and the tenants' pooler-uri). */}}
{{- define "prismicx.pgbouncer.host" -}}
{{- include "prismicx.svcHost" (dict "ctx" . "name" "pgbouncer") }}
{{- end }}

{{/* The include file the operator edits and PgBouncer reads. */}}
{{- define "prismicx.pgbouncer.databasesDir" -}}/var/lib/prismicx/pgbouncer{{- end }}
{{- define "prismicx.pgbouncer.databasesFile" -}}{{ include "prismicx.pgbouncer.databasesDir" . }}/databases.ini{{- end }}

{{/*
The container securityContext every container of the chart gets: non-root, read-only root
filesystem, no privilege escalation, no capabilities, the runtime's seccomp profile.
Call with the uid (and gid) to run as.
*/}}
{{- define "prismicx.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The pod securityContext: non-root, seccomp, fsGroup for the volumes. */}}
{{- define "prismicx.podSecurityContext" -}}
runAsNonRoot: true
fsGroup: {{ .gid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}
