"""The Kubernetes manifests' own checks (`python -m k8s.check`); the manifests
themselves are kustomize directories beside this file (k8s/README.md)."""
