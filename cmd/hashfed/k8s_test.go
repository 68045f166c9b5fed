package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/hashfed/hashfed/consortium"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestK8sManifests decodes deploy/k8s strictly with the Kubernetes API types (an unknown or
// misspelt field fails), decodes the configuration files the ConfigMap carries strictly with
// hashfed serve's own configuration type, and checks that the pieces refer to each other: every
// file, key and port a pod uses exists, the replicas follow the member node's Service, and each
// Service selects the pods it serves.
func TestK8sManifests(t *testing.T) {
	files, err := filepath.Glob("../../deploy/k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	var (
		cms      = map[string]*corev1.ConfigMap{}
		services = map[string]*corev1.Service{}
		sets     = map[string]*appsv1.StatefulSet{}
		deploys  = map[string]*appsv1.Deployment{}
	)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			var meta struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var obj any
			switch meta.Kind {
			case "ConfigMap":
				o := &corev1.ConfigMap{}
				obj, cms[name(t, f, doc)] = o, o
			case "Service":
				o := &corev1.Service{}
				obj, services[name(t, f, doc)] = o, o
			case "StatefulSet":
				o := &appsv1.StatefulSet{}
				obj, sets[name(t, f, doc)] = o, o
			case "Deployment":
				o := &appsv1.Deployment{}
				obj, deploys[name(t, f, doc)] = o, o
			default:
				t.Fatalf("%s document %d: kind %q not expected", f, i, meta.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Errorf("%s document %d (%s): %v", f, i, meta.Kind, err)
			}
		}
	}
	cm := cms["hashfed-config"]
	node, replica := sets["hashfed-node"], deploys["hashfed-replica"]
	if cm == nil || node == nil || replica == nil || services["hashfed-node"] == nil || services["hashfed-match"] == nil {
		t.Fatalf("want ConfigMap hashfed-config, StatefulSet hashfed-node, Deployment hashfed-replica, Services hashfed-node and hashfed-match")
	}

	// The configuration files decode strictly as hashfed serve reads them.
	tomls := map[string]fileConfig{}
	for _, k := range []string{"node.toml", "replica.toml"} {
		var fc fileConfig
		md, err := toml.Decode(cm.Data[k], &fc)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			t.Errorf("%s: unknown setting %q", k, und[0].String())
		}
		tomls[k] = fc
	}
	if n := *node.Spec.Replicas; n != 1 {
		t.Errorf("member node StatefulSet has %d replicas, want 1 (one pod per member key)", n)
	}
	if tomls["node.toml"].Replica.Follow != "" || tomls["replica.toml"].Replica.Follow == "" {
		t.Error("node.toml must not follow; replica.toml must")
	}
	if m := tomls["replica.toml"].Replica.Member; consortium.ValidateMemberID(m) != nil {
		t.Errorf("replica.toml follows member %q: want the member id whose node it follows", m)
	}
	if len(tomls["node.toml"].Peer.Replicas) == 0 {
		t.Error("node.toml lists no replica key")
	}
	// The replicas follow the member node's peer port through its Service.
	host, port, err := net.SplitHostPort(tomls["replica.toml"].Replica.Follow)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(host, node.Name+"-0."+node.Spec.ServiceName) {
		t.Errorf("replicas follow %s, want the pod %s-0 of Service %s", host, node.Name, node.Spec.ServiceName)
	}
	if p, _ := strconv.Atoi(port); !hasPort(services[node.Spec.ServiceName], int32(p)) {
		t.Errorf("replicas follow port %s, which Service %s does not expose", port, node.Spec.ServiceName)
	}

	for _, pt := range []struct {
		what   string
		tmpl   corev1.PodTemplateSpec
		config string
	}{{"node", node.Spec.Template, "node.toml"}, {"replica", replica.Spec.Template, "replica.toml"}} {
		spec := pt.tmpl.Spec
		c := spec.Containers[0]
		if got := strings.Join(c.Args, " "); !strings.Contains(got, "/etc/hashfed/"+pt.config) {
			t.Errorf("%s container args %q do not name /etc/hashfed/%s", pt.what, got, pt.config)
		}
		vols := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			vols[v.Name] = v
		}
		mounted := map[string]bool{}
		for _, m := range c.VolumeMounts {
			v, ok := vols[m.Name]
			isClaim := pt.what == "node" && m.Name == node.Spec.VolumeClaimTemplates[0].Name
			if !ok && !isClaim {
				t.Errorf("%s mounts volume %q, which is not defined", pt.what, m.Name)
			}
			if v.ConfigMap != nil && m.SubPath != "" {
				if _, ok := cms[v.ConfigMap.Name].Data[m.SubPath]; !ok {
					t.Errorf("%s mounts %s from ConfigMap %s, which has no such key", pt.what, m.SubPath, v.ConfigMap.Name)
				}
			}
			mounted[m.MountPath] = true
			if m.SubPath != "" {
				mounted[m.MountPath] = true
			}
		}
		fc := tomls[pt.config]
		files := []string{fc.Genesis, fc.Key, fc.MemberAPI.TokenFile}
		for _, f := range files {
			if !mountedFile(c.VolumeMounts, vols, f) {
				t.Errorf("%s: %s reads %s, which no volume mount provides", pt.what, pt.config, f)
			}
		}
		if !mounted[fc.DataDir] {
			t.Errorf("%s: data_dir %s is not a mounted volume", pt.what, fc.DataDir)
		}
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		if hp := c.ReadinessProbe.HTTPGet; hp == nil || ports[hp.Port.StrVal] == 0 {
			t.Errorf("%s readiness probe names a port the container does not declare", pt.what)
		}
		for _, l := range []string{fc.MemberAPI.Listen, fc.HTTP.Listen, fc.Peer.Listen} {
			if l == "" {
				continue
			}
			_, p, _ := net.SplitHostPort(l)
			n, _ := strconv.Atoi(p)
			found := false
			for _, cp := range c.Ports {
				found = found || cp.ContainerPort == int32(n)
			}
			if !found {
				t.Errorf("%s listens on %s, a port the container does not declare", pt.what, l)
			}
		}
	}
	for svcName, set := range map[string]map[string]string{"hashfed-node": node.Spec.Template.Labels, "hashfed-match": replica.Spec.Template.Labels} {
		for k, v := range services[svcName].Spec.Selector {
			if set[k] != v {
				t.Errorf("Service %s selects %s=%s, which its pods do not carry", svcName, k, v)
			}
		}
	}
}

func name(t *testing.T, f string, doc []byte) string {
	t.Helper()
	var m struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &m); err != nil || m.Metadata.Name == "" {
		t.Fatalf("%s: a document without a name: %v", f, err)
	}
	return m.Metadata.Name
}

func hasPort(s *corev1.Service, p int32) bool {
	for _, sp := range s.Spec.Ports {
		if sp.Port == p {
			return true
		}
	}
	return false
}

// mountedFile reports whether path is provided by a mount: a file mounted at that path, or a
// directory mount of a Secret or ConfigMap that carries the file's name.
func mountedFile(mounts []corev1.VolumeMount, vols map[string]corev1.Volume, path string) bool {
	for _, m := range mounts {
		if m.MountPath == path {
			return true
		}
		if filepath.Dir(path) != m.MountPath {
			continue
		}
		v := vols[m.Name]
		base := filepath.Base(path)
		if v.Secret != nil {
			for _, it := range v.Secret.Items {
				if it.Path == base {
					return true
				}
			}
		}
	}
	return false
}
