{{/* The release's full name, at most 63 characters (a DNS label). */}}
{{- define "ams.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ams.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the operator's pods; never change them (a Deployment's selector is immutable). */}}
{{- define "ams.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ams.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ams.labels" -}}
{{ include "ams.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ams.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ams.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ams.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The namespaces to watch; in namespaced RBAC mode there must be at least one. */}}
{{- define "ams.watchedNamespaces" -}}
{{- if and .Values.rbac.namespaced (empty .Values.operator.namespaces) -}}
{{- fail "rbac.namespaced=true needs operator.namespaces: the namespaces to make Roles in and to watch" -}}
{{- end -}}
{{- join "," .Values.operator.namespaces -}}
{{- end -}}

{{/* The operator's credential, as AMS_AZURE_CREDENTIAL spells it. */}}
{{- define "ams.credential" -}}
{{- $c := .Values.operator.credential -}}
{{- if and (eq $c.mode "managed-identity") $c.managedIdentityClientId -}}
{{- printf "managed-identity:%s" $c.managedIdentityClientId -}}
{{- else -}}
{{- $c.mode -}}
{{- end -}}
{{- end -}}

{{/*
"true" when a tenancy rule selects namespaces by label (has a namespaceSelector, even an empty
one, as the binary reads it), else empty: then the operator caches namespace labels and needs
list and watch on namespaces.
*/}}
{{- define "ams.tenancyUsesSelectors" -}}
{{- range .Values.tenancy.rules -}}
{{- if hasKey . "namespaceSelector" -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ams.tenancyFile" -}}
{{- printf "%s/tenancy.yaml" (trimSuffix "/" .Values.tenancy.mountPath) -}}
{{- end -}}

{{/*
policy/v1 PodDisruptionBudget arrived in 1.21; policy/v1beta1 is gone from 1.25. Against a
cluster Helm knows what it serves; `helm template` assumes every built-in API of its own client,
so the Kubernetes version decides too: render for an older cluster with --kube-version.
*/}}
{{- define "ams.pdbApiVersion" -}}
{{- if .Values.podDisruptionBudget.apiVersion -}}
{{- .Values.podDisruptionBudget.apiVersion -}}
{{- else if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}
