{{/* The chart's name, for labels. */}}
{{- define "smartcity.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object the chart makes. */}}
{{- define "smartcity.fullname" -}}
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

{{/* The operator's pods, as its Deployment, Service and budgets select them. */}}
{{- define "smartcity.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smartcity.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The labels of every object of the release, without its component. */}}
{{- define "smartcity.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "smartcity.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: smartcity
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The labels of the operator's own objects. */}}
{{- define "smartcity.labels" -}}
{{ include "smartcity.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "smartcity.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "smartcity.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "smartcity.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The NATS URL for resources that name none: the value, else the NATS chart's service. */}}
{{- define "smartcity.natsUrl" -}}
{{- if .Values.natsUrl }}
{{- .Values.natsUrl }}
{{- else if .Values.nats.enabled }}
{{- $nats := "nats" }}
{{- if contains $nats .Release.Name }}{{ $nats = .Release.Name }}{{ else }}{{ $nats = printf "%s-nats" .Release.Name }}{{ end }}
{{- printf "nats://%s.%s.svc:4222" ($nats | trunc 63 | trimSuffix "-") .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The hardened security contexts every pod of the chart runs with. */}}
{{- define "smartcity.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "smartcity.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end }}
