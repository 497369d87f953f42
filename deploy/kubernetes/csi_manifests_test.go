package kubernetes_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/yaml"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// csiTypeOf maps apiVersion/kind to the API type a document of csi/ must
// decode into.
var csiTypeOf = map[string]func() any{
	"storage.k8s.io/v1/CSIDriver":                     func() any { return &storagev1.CSIDriver{} },
	"storage.k8s.io/v1/StorageClass":                  func() any { return &storagev1.StorageClass{} },
	"apps/v1/DaemonSet":                               func() any { return &appsv1.DaemonSet{} },
	"apps/v1/Deployment":                              func() any { return &appsv1.Deployment{} },
	"v1/ServiceAccount":                               func() any { return &corev1.ServiceAccount{} },
	"v1/PersistentVolume":                             func() any { return &corev1.PersistentVolume{} },
	"v1/PersistentVolumeClaim":                        func() any { return &corev1.PersistentVolumeClaim{} },
	"v1/Pod":                                          func() any { return &corev1.Pod{} },
	"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
	"rbac.authorization.k8s.io/v1/Role":               func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding":        func() any { return &rbacv1.RoleBinding{} },
}

// csiObjects is every object of csi/, by kind, and the files they came from.
type csiObjects struct {
	files        []string
	drivers      []*storagev1.CSIDriver
	classes      []*storagev1.StorageClass
	daemonSets   []*appsv1.DaemonSet
	deployments  []*appsv1.Deployment
	accounts     []*corev1.ServiceAccount
	pvs          []*corev1.PersistentVolume
	pvcs         []*corev1.PersistentVolumeClaim
	pods         []*corev1.Pod
	clusterRoles []*rbacv1.ClusterRole
	crBindings   []*rbacv1.ClusterRoleBinding
	roles        []*rbacv1.Role
	roleBindings []*rbacv1.RoleBinding
}

func decodeCSIStrict(doc []byte) (any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var meta struct{ APIVersion, Kind string }
	if err := json.Unmarshal(j, &meta); err != nil {
		return nil, err
	}
	mk, ok := csiTypeOf[meta.APIVersion+"/"+meta.Kind]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q: not a type this test knows; add it to csiTypeOf", meta.APIVersion, meta.Kind)
	}
	obj := mk()
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("%s: %w", meta.Kind, err)
	}
	return obj, nil
}

func loadCSI(t *testing.T) *csiObjects {
	t.Helper()
	files, err := filepath.Glob("csi/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CSI manifests: %v", err)
	}
	o := &csiObjects{files: files}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitDocs(raw) {
			obj, err := decodeCSIStrict(doc)
			if err != nil {
				t.Fatalf("%s, document %d: %v", f, i+1, err)
			}
			switch v := obj.(type) {
			case *storagev1.CSIDriver:
				o.drivers = append(o.drivers, v)
			case *storagev1.StorageClass:
				o.classes = append(o.classes, v)
			case *appsv1.DaemonSet:
				o.daemonSets = append(o.daemonSets, v)
			case *appsv1.Deployment:
				o.deployments = append(o.deployments, v)
			case *corev1.ServiceAccount:
				o.accounts = append(o.accounts, v)
			case *corev1.PersistentVolume:
				o.pvs = append(o.pvs, v)
			case *corev1.PersistentVolumeClaim:
				o.pvcs = append(o.pvcs, v)
			case *corev1.Pod:
				o.pods = append(o.pods, v)
			case *rbacv1.ClusterRole:
				o.clusterRoles = append(o.clusterRoles, v)
			case *rbacv1.ClusterRoleBinding:
				o.crBindings = append(o.crBindings, v)
			case *rbacv1.Role:
				o.roles = append(o.roles, v)
			case *rbacv1.RoleBinding:
				o.roleBindings = append(o.roleBindings, v)
			}
		}
	}
	return o
}

// csiArgs parses the `mounter csi` command of a container the way the
// binary does, with $(VAR) references to the container's env replaced by a
// sample value.
func csiArgs(t *testing.T, c corev1.Container) *csi.Options {
	t.Helper()
	cmd := append(append([]string(nil), c.Command...), c.Args...)
	if len(cmd) < 2 || filepath.Base(cmd[0]) != "mounter" || cmd[1] != "csi" {
		t.Fatalf("container %s runs %q, want mounter csi", c.Name, cmd)
	}
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	ref := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	args := make([]string, 0, len(cmd)-2)
	for _, a := range cmd[2:] {
		for _, m := range ref.FindAllStringSubmatch(a, -1) {
			if !env[m[1]] {
				t.Errorf("container %s: %s refers to $(%s), which its env does not set", c.Name, a, m[1])
			}
		}
		args = append(args, ref.ReplaceAllString(a, "node-a"))
	}
	o, err := csi.ParseArgs(args)
	if err != nil {
		t.Fatalf("container %s: mounter csi %q: %v", c.Name, args, err)
	}
	return o
}

func socketOf(t *testing.T, endpoint string) string {
	t.Helper()
	p, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok {
		t.Fatalf("endpoint %q is not unix://", endpoint)
	}
	return p
}

// TestCSIManifests decodes csi/ strictly and checks that the pieces fit:
// one driver name everywhere, the node plugin is the mounter the rule of
// runc-shared-config matches, kubelet finds its sockets, the provisioner
// reaches the controller and may do its job, the examples' volumes are
// what the driver accepts.
func TestCSIManifests(t *testing.T) {
	o := loadCSI(t)
	top := load(t)
	cfg := top.rules(t)
	rule := cfg.Mounters[0]
	rc := top.runtimeClasses["shared"]
	installer := top.daemonSet(t, "runc-shared-node-installer").Spec.Template.Spec.InitContainers[0]

	if len(o.drivers) != 1 || len(o.daemonSets) != 1 || len(o.deployments) != 1 || len(o.classes) != 1 || len(o.pods) != 1 {
		t.Fatalf("want one CSIDriver, DaemonSet, Deployment, StorageClass and Pod; have %d, %d, %d, %d, %d",
			len(o.drivers), len(o.daemonSets), len(o.deployments), len(o.classes), len(o.pods))
	}
	drv := o.drivers[0]
	name := drv.Name
	if drv.Spec.AttachRequired == nil || *drv.Spec.AttachRequired {
		t.Error("attachRequired must be false: nothing is attached, and no external-attacher runs")
	}
	for _, mode := range []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral} {
		if !slices.Contains(drv.Spec.VolumeLifecycleModes, mode) {
			t.Errorf("CSIDriver lacks lifecycle mode %s", mode)
		}
	}

	t.Run("Node", func(t *testing.T) {
		ds := o.daemonSets[0]
		pod := ds.Spec.Template.Spec
		if ds.Name != "glusterfs-mounter" {
			t.Errorf("node DaemonSet %s: it replaces ../glusterfs-mounter.yaml, so it must have that name", ds.Name)
		}
		if pod.RuntimeClassName == nil || rc == nil || *pod.RuntimeClassName != rc.Name {
			t.Errorf("runtimeClassName %v, want the RuntimeClass %v", pod.RuntimeClassName, rc)
		}
		if !pod.HostNetwork {
			t.Error("want hostNetwork (the FUSE daemons reach the servers)")
		}
		// The new pod's server makes the node's recorded volumes live
		// again: one node at a time, never two mounters of one node.
		if u := ds.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil ||
			u.RollingUpdate.MaxUnavailable == nil || u.RollingUpdate.MaxUnavailable.IntValue() != 1 ||
			u.RollingUpdate.MaxSurge == nil || u.RollingUpdate.MaxSurge.IntValue() != 0 {
			t.Errorf("update strategy %+v, want RollingUpdate with maxUnavailable 1 and maxSurge 0", u)
		}
		if len(pod.Containers) != 1 {
			t.Fatalf("want one container (no registrar sidecar: mounter csi registers), have %d", len(pod.Containers))
		}
		c := pod.Containers[0]
		// The wrapper's view: containerd's CRI spec of this container.
		container := criSpec(ds.Spec.Template.Annotations, map[string]string{
			"io.kubernetes.cri.container-type":    "container",
			"io.kubernetes.cri.container-name":    c.Name,
			"io.kubernetes.cri.sandbox-namespace": ds.Namespace,
		})
		if got := spec.FindRule(cfg.Mounters, container); got == nil || got.Name != rule.Name {
			t.Fatalf("rule %s does not match the CSI node container: %+v", rule.Name, got)
		}
		if err := spec.CheckPolicy(&rule, withCaps(container, "CAP_SYS_ADMIN")); err != nil {
			t.Errorf("policy refuses the CSI node container: %v", err)
		}
		if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
			t.Error("not privileged: the rule requires CAP_SYS_ADMIN, FUSE needs /dev/fuse")
		}
		args := csiArgs(t, c)
		if args.Driver != name {
			t.Errorf("--driver-name %s, CSIDriver %s", args.Driver, name)
		}
		if args.Rule != "" && cfg.Rule(args.Rule) == nil {
			t.Errorf("--rule %s is not a rule of runc-shared-config", args.Rule)
		}
		// kubelet's paths: its plugins dir and the registration dir, inside
		// the rule's allowlist and bound at the same path.
		sock := socketOf(t, args.Endpoint)
		if want := "/var/lib/kubelet/plugins/" + name + "/csi.sock"; sock != want || args.KubeletEndpoint != want {
			t.Errorf("endpoint %s (kubelet sees %s), want %s", sock, args.KubeletEndpoint, want)
		}
		if args.RegistrationDir != "/var/lib/kubelet/plugins_registry" {
			t.Errorf("--registration-dir %q, want kubelet's /var/lib/kubelet/plugins_registry", args.RegistrationDir)
		}
		for _, p := range []string{sock, args.RegistrationDir} {
			prefix := ""
			for _, r := range rule.Propagate {
				if strings.HasPrefix(p, r+"/") {
					prefix = r
				}
			}
			vm := mountOf(c.VolumeMounts, volumeFor(pod.Volumes, prefix))
			if prefix == "" || vm == nil || vm.MountPath != prefix {
				t.Errorf("%s is not below a rule path bound at the same path (%v, %+v)", p, rule.Propagate, vm)
			}
		}
		// The configuration the node installer writes, and the node's state dir.
		if vm := mountOf(c.VolumeMounts, volumeFor(pod.Volumes, filepath.Dir(args.ConfigPath))); vm == nil || vm.MountPath != filepath.Dir(args.ConfigPath) {
			t.Errorf("--config %s is not the node's file (a hostPath of %s)", args.ConfigPath, filepath.Dir(args.ConfigPath))
		}
		if vm := mountOf(c.VolumeMounts, volumeFor(pod.Volumes, cfg.StateDir)); vm == nil || vm.MountPath != cfg.StateDir {
			t.Errorf("the state dir %s is not the node's: `mounter status` would not see the CSI records", cfg.StateDir)
		}
		checkMounterCopy(t, pod, c, installer)
	})

	t.Run("Controller", func(t *testing.T) {
		dep := o.deployments[0]
		pod := dep.Spec.Template.Spec
		var prov, server *corev1.Container
		for i := range pod.Containers {
			c := &pod.Containers[i]
			if strings.Contains(c.Image, "csi-provisioner") {
				prov = c
			} else {
				server = c
			}
		}
		if prov == nil || server == nil {
			t.Fatalf("want the external-provisioner and mounter csi containers: %+v", pod.Containers)
		}
		args := csiArgs(t, *server)
		if args.Driver != name {
			t.Errorf("--driver-name %s, CSIDriver %s", args.Driver, name)
		}
		sock := socketOf(t, args.Endpoint)
		var addr string
		leader := false
		for _, a := range prov.Args {
			if v, ok := strings.CutPrefix(a, "--csi-address="); ok {
				addr = v
			}
			leader = leader || a == "--leader-election" || a == "--leader-election=true"
		}
		sv, pv := mountOf(server.VolumeMounts, "socket-dir"), mountOf(prov.VolumeMounts, "socket-dir")
		if sv == nil || pv == nil || filepath.Join(sv.MountPath, "csi.sock") != sock || filepath.Join(pv.MountPath, filepath.Base(addr)) != addr || filepath.Base(addr) != filepath.Base(sock) {
			t.Errorf("the provisioner's --csi-address %s does not reach the server's %s", addr, sock)
		}
		if !leader {
			t.Error("the provisioner runs without leader election: a rolling update runs two")
		}
		if server.SecurityContext == nil || server.SecurityContext.Privileged == nil || !*server.SecurityContext.Privileged {
			t.Error("the controller mounts the base volume with FUSE: privileged")
		}
		checkMounterCopy(t, pod, *server, installer)
		// RBAC: the provisioner's account may create PVs, update PVCs, read
		// StorageClasses, take its lease.
		sa := pod.ServiceAccountName
		can := func(verb, group, resource string) bool {
			for _, b := range o.crBindings {
				if !boundTo(b.Subjects, sa, dep.Namespace) {
					continue
				}
				for _, r := range o.clusterRoles {
					if r.Name == b.RoleRef.Name && allows(r.Rules, verb, group, resource) {
						return true
					}
				}
			}
			for _, b := range o.roleBindings {
				if !boundTo(b.Subjects, sa, dep.Namespace) || b.Namespace != dep.Namespace {
					continue
				}
				for _, r := range o.roles {
					if r.Name == b.RoleRef.Name && r.Namespace == b.Namespace && allows(r.Rules, verb, group, resource) {
						return true
					}
				}
			}
			return false
		}
		for _, p := range [][3]string{{"create", "", "persistentvolumes"}, {"delete", "", "persistentvolumes"}, {"update", "", "persistentvolumeclaims"},
			{"watch", "storage.k8s.io", "storageclasses"}, {"create", "", "events"}, {"update", "coordination.k8s.io", "leases"}} {
			if !can(p[0], p[1], p[2]) {
				t.Errorf("service account %s may not %s %s.%s", sa, p[0], p[2], p[1])
			}
		}
		found := false
		for _, a := range o.accounts {
			found = found || a.Name == sa && a.Namespace == dep.Namespace
		}
		if !found {
			t.Errorf("no ServiceAccount %s/%s", dep.Namespace, sa)
		}
	})

	t.Run("Volumes", func(t *testing.T) {
		sc := o.classes[0]
		if sc.Provisioner != name {
			t.Errorf("StorageClass provisioner %s, CSIDriver %s", sc.Provisioner, name)
		}
		if err := csi.CheckParameters(sc.Parameters); err != nil {
			t.Errorf("StorageClass %s: %v", sc.Name, err)
		}
		if !rule.Routes(sc.Parameters[csi.KeyFSType]) {
			t.Errorf("StorageClass type %q is not among the rule's %v", sc.Parameters[csi.KeyFSType], rule.FSTypes)
		}
		claims := map[string]*corev1.PersistentVolumeClaim{}
		for _, c := range o.pvcs {
			claims[c.Namespace+"/"+c.Name] = c
			if c.Spec.StorageClassName != nil && *c.Spec.StorageClassName != "" && *c.Spec.StorageClassName != sc.Name {
				t.Errorf("PVC %s names StorageClass %s", c.Name, *c.Spec.StorageClassName)
			}
		}
		for _, pv := range o.pvs {
			if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != name {
				t.Errorf("PV %s is not a volume of %s", pv.Name, name)
				continue
			}
			if err := csi.CheckVolumeContext(pv.Spec.CSI.VolumeAttributes); err != nil {
				t.Errorf("PV %s: %v", pv.Name, err)
			}
			ref := pv.Spec.ClaimRef
			if c := claims[ref.Namespace+"/"+ref.Name]; ref == nil || c == nil || c.Spec.VolumeName != pv.Name {
				t.Errorf("PV %s and its claim do not point at each other", pv.Name)
			}
		}
		pod := o.pods[0]
		csiVolumes := map[string]bool{}
		for _, v := range pod.Spec.Volumes {
			switch {
			case v.CSI != nil:
				csiVolumes[v.Name] = true
				if v.CSI.Driver != name {
					t.Errorf("inline volume %s: driver %s, want %s", v.Name, v.CSI.Driver, name)
				}
				if err := csi.CheckVolumeContext(v.CSI.VolumeAttributes); err != nil {
					t.Errorf("inline volume %s: %v", v.Name, err)
				}
			case v.PersistentVolumeClaim != nil:
				csiVolumes[v.Name] = true
				if claims[pod.Namespace+"/"+v.PersistentVolumeClaim.ClaimName] == nil {
					t.Errorf("volume %s: no PVC %s in the examples", v.Name, v.PersistentVolumeClaim.ClaimName)
				}
			}
		}
		if len(csiVolumes) < 3 {
			t.Errorf("the example pod uses %d CSI volumes, want the dynamic, the static and an inline one", len(csiVolumes))
		}
		for _, c := range pod.Spec.Containers {
			for _, vm := range c.VolumeMounts {
				if csiVolumes[vm.Name] && (vm.MountPropagation == nil || *vm.MountPropagation != corev1.MountPropagationHostToContainer) {
					t.Errorf("volume %s mounted without mountPropagation HostToContainer", vm.Name)
				}
			}
		}
	})

	t.Run("README", func(t *testing.T) {
		raw, err := os.ReadFile("csi/README.md")
		if err != nil {
			t.Fatal(err)
		}
		readme := string(raw)
		if !strings.Contains(readme, "`"+name+"`") {
			t.Errorf("csi/README.md does not name the driver %s", name)
		}
		for _, f := range o.files {
			if !strings.Contains(readme, "`"+filepath.Base(f)+"`") {
				t.Errorf("csi/README.md does not describe %s", f)
			}
		}
		// Every file the install commands apply exists.
		for _, m := range regexp.MustCompile(`-f (deploy/kubernetes/\S+\.yaml)`).FindAllStringSubmatch(readme, -1) {
			if _, err := os.Stat(strings.TrimPrefix(m[1], "deploy/kubernetes/")); err != nil {
				t.Errorf("csi/README.md applies %s: %v", m[1], err)
			}
		}
		for _, want := range []string{"--registration-dir=/var/lib/kubelet/plugins_registry", "--kubelet-registration-path=/var/lib/kubelet/plugins/" + name + "/csi.sock"} {
			if !strings.Contains(readme, want) {
				t.Errorf("csi/README.md lacks %q", want)
			}
		}
	})
}

// checkMounterCopy: the container runs the mounter binary an init
// container copies from the installer image into a volume they share.
func checkMounterCopy(t *testing.T, pod corev1.PodSpec, c corev1.Container, installer corev1.Container) {
	t.Helper()
	bin := c.Command[0]
	vol := ""
	for _, vm := range c.VolumeMounts {
		if strings.HasPrefix(bin, vm.MountPath+"/") {
			vol = vm.Name
		}
	}
	if vol == "" || volume(pod.Volumes, vol) == nil || volume(pod.Volumes, vol).EmptyDir == nil {
		t.Fatalf("%s runs %s, which is on no emptyDir volume", c.Name, bin)
	}
	for _, ic := range pod.InitContainers {
		vm := mountOf(ic.VolumeMounts, vol)
		if vm == nil || ic.Image != installer.Image {
			continue
		}
		if len(ic.Command) == 3 && ic.Command[0] == "cp" && strings.HasSuffix(ic.Command[1], "/mounter") &&
			ic.Command[2] == filepath.Join(vm.MountPath, strings.TrimPrefix(bin, mountOf(c.VolumeMounts, vol).MountPath)) {
			return
		}
	}
	t.Errorf("%s: no init container of the installer image %s copies mounter to %s", c.Name, installer.Image, bin)
}

func boundTo(subjects []rbacv1.Subject, sa, ns string) bool {
	for _, s := range subjects {
		if s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == ns {
			return true
		}
	}
	return false
}

func allows(rules []rbacv1.PolicyRule, verb, group, resource string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
			return true
		}
	}
	return false
}
