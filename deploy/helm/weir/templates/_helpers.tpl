{{/* Names. */}}
{{- define "weir.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "weir.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "weir.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels: "weir.labels" takes (dict "ctx" $ "component" NAME). */}}
{{- define "weir.selectorLabels" -}}
app.kubernetes.io/name: {{ include "weir.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "weir.labels" -}}
{{ include "weir.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: weir
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
{{- end -}}

{{/* Paths inside the pods. */}}
{{- define "weir.clusterDir" -}}/var/lib/weir/cluster{{- end -}}

{{/* A listening address: the wildcard, or the pod's own ("$(POD_IP)", expanded by the kubelet). */}}
{{- define "weir.anyAddr" -}}
{{- if eq .Values.ipFamily "IPv6" -}}[::]{{- else -}}0.0.0.0{{- end -}}
{{- end -}}
{{- define "weir.podAddr" -}}
{{- if eq .Values.ipFamily "IPv6" -}}[$(POD_IP)]{{- else -}}$(POD_IP){{- end -}}
{{- end -}}

{{/*
The cluster directory, /var/lib/weir/cluster on the shared volume, holds what `weir` reads
there (cli/src/config.rs): ca.pem, node.pem, node.key and token (is_initialised, identity) and
weir.toml. They are symbolic links to this pod's own mounts of the Secret and the ConfigMap, so
that no key is copied to the shared volume, and links rather than subPath mounts so that the
directory is created by the pod's own user (a subPath mount point would be created by the
container runtime, as root). Existing correct links are left alone: other pods read them.
*/}}
{{- define "weir.prepareClusterDir" -}}
set -eu
dir={{ include "weir.clusterDir" . }}
mkdir -p "$dir"
link() {
  if [ "$(readlink "$dir/$2" 2>/dev/null || true)" != "$1" ]; then ln -sfn "$1" "$dir/$2"; fi
}
for f in ca.pem node.pem node.key token; do link "/etc/weir/identity/$f" "$f"; done
link /etc/weir/config/weir.toml weir.toml
{{- end -}}

{{/* Environment every Weir container has. */}}
{{- define "weir.env" -}}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: WEIR_CLUSTER_DIR
  value: {{ include "weir.clusterDir" . }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- end -}}

{{- define "weir.volumeMounts" -}}
- name: shared
  mountPath: /var/lib/weir
- name: identity
  mountPath: /etc/weir/identity
  readOnly: true
- name: config
  mountPath: /etc/weir/config
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "weir.volumes" -}}
- name: shared
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-shared" (include "weir.fullname" .)) .Values.storage.existingClaim }}
- name: identity
  secret:
    secretName: {{ .Values.clusterSecret }}
    defaultMode: 0440
    items:
      - key: ca.pem
        path: ca.pem
      - key: node.pem
        path: node.pem
      - key: node.key
        path: node.key
      - key: token
        path: token
- name: config
  configMap:
    name: {{ include "weir.fullname" . }}-config
- name: tmp
  emptyDir: {}
{{- end -}}

{{/* Pod-level settings shared by the JobManager, the TaskManagers and the submitting Job. */}}
{{- define "weir.podSpecCommon" -}}
# No API access, and no Service environment variables: Kubernetes would add WEIR_<SERVICE>_*
# variables for the Services of the namespace, and Weir reads WEIR_* variables as configuration.
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
