/*
 * hm_bench: the cost of libhostmount.so (run as root by `make -C preload
 * bench`, in a throwaway mount namespace; nothing on the host changes).
 *
 *  1. process start: posix_spawn of /bin/true N (default 1000) times each
 *     without the shim, with LD_PRELOAD, and with /etc/ld.so.preload (as the
 *     wrapper injects it), round-robin so load changes on a shared machine hit
 *     all alike. A config file is in place (the shim reads it only on a mount
 *     call). /etc is replaced in this namespace by a tmpfs holding a copy of
 *     ld.so.cache, so all three runs see the same /etc.
 *  2. mount latency: tmpfs mount + umount2 pairs on an allowlisted target
 *     through the shim (fork, setns, mount in the child) against the plain
 *     libc calls.
 *
 * The child's CPU time (user+system from wait4) is the figure to trust on a
 * busy machine; wall-clock medians are printed too.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HM_TEST_CONF HM_TEST_DIR "/etc/hostmount.conf"
#define ETC HM_TEST_DIR "/sysetc"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* spawn_true returns the wall time of one spawn+wait of /bin/true and adds
 * the child's CPU time to *cpu. */
static double spawn_true(char **envp, double *cpu)
{
	char *argv[] = { "/bin/true", NULL };
	double t0 = now();
	struct rusage ru;
	pid_t pid;
	int st;

	if (posix_spawn(&pid, argv[0], NULL, NULL, argv, envp) != 0) {
		perror("posix_spawn");
		exit(3);
	}
	wait4(pid, &st, 0, &ru);
	*cpu += (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "hm_bench: /bin/true failed (0x%x)\n", st);
		exit(3);
	}
	return now() - t0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (in < 0 || out < 0) {
		perror("hm_bench: copy");
		exit(3);
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			exit(3);
	close(in);
	close(out);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(path);
		exit(3);
	}
}

enum { NONE, ENV, FILE_, NV };
static const char *const vname[NV] = { "without", "LD_PRELOAD",
				       "/etc/ld.so.preload" };

typedef int (*mount_fn)(const char *, const char *, const char *,
			unsigned long, const void *);
typedef int (*umount2_fn)(const char *, int);

static double mount_pairs(int n, mount_fn m, umount2_fn u, const char *tgt)
{
	double t0 = now();

	for (int i = 0; i < n; i++) {
		if (m("tmpfs", tgt, "tmpfs", 0, NULL) < 0 || u(tgt, 0) < 0) {
			perror("hm_bench: mount/umount");
			exit(3);
		}
	}
	return now() - t0;
}

int main(int argc, char **argv)
{
	int total = argc > 1 ? atoi(argv[1]) : 1000;
	char env_pre[512], conf[512];
	char *envs[NV][2] = { { NULL }, { env_pre, NULL }, { NULL } };
	double *wall[NV], cpu[NV] = { 0 }, junk = 0;
	char tgt[4096];
	int nsfd;
	void *h;

	if (total < 10)
		total = 10;
	if (mkdir(HM_TEST_DIR, 0755) < 0 && errno != EEXIST)
		return 3;
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", HM_TEST_DIR, "tmpfs", 0, NULL) < 0) {
		perror("hm_bench: throwaway namespace");
		return 3;
	}
	mkdir(HM_TEST_DIR "/etc", 0755);
	mkdir(HM_TEST_DIR "/kube", 0755);
	mkdir(HM_TEST_DIR "/kube/b", 0755);
	mkdir(ETC, 0755);
	nsfd = open("/proc/self/ns/mnt", O_RDONLY);
	if (nsfd < 0)
		return 3;
	snprintf(conf, sizeof(conf),
		 "mntns /proc/self/fd/%d\nallow %s/kube\nfstype glusterfs\n"
		 "fstype tmpfs\n",
		 nsfd, HM_TEST_DIR);
	write_file(HM_TEST_CONF, conf);
	snprintf(env_pre, sizeof(env_pre), "LD_PRELOAD=%s", HM_LIB);
	copy_file("/etc/ld.so.cache", ETC "/ld.so.cache");
	write_file(ETC "/ld.so.preload.off", HM_LIB "\n");
	if (mount(ETC, "/etc", NULL, MS_BIND, NULL) < 0) {
		perror("hm_bench: bind /etc");
		return 3;
	}
	for (int v = 0; v < NV; v++)
		if (!(wall[v] = calloc((size_t)total, sizeof(double))))
			return 3;

	for (int i = -50; i < total; i++) {
		for (int k = 0; k < NV; k++) {
			int v = (i + k + 50) % NV; /* rotate the order */
			double t;

			if (v == FILE_ && rename("/etc/ld.so.preload.off",
						 "/etc/ld.so.preload") < 0)
				return 3;
			t = spawn_true(envs[v], i < 0 ? &junk : &cpu[v]);
			if (v == FILE_ && rename("/etc/ld.so.preload",
						 "/etc/ld.so.preload.off") < 0)
				return 3;
			if (i >= 0)
				wall[v][i] = t;
		}
	}
	printf("exec /bin/true x%d each (child CPU time per exec; wall median):\n",
	       total);
	for (int v = 0; v < NV; v++) {
		qsort(wall[v], (size_t)total, sizeof(double), cmp);
		printf("  %-19s %7.1f us (x%.3f)  wall %7.1f us (x%.3f)\n",
		       vname[v], cpu[v] / total * 1e6, cpu[v] / cpu[NONE],
		       wall[v][total / 2] * 1e6,
		       wall[v][total / 2] / wall[NONE][total / 2]);
	}

	fflush(stdout);
	h = dlopen(HM_LIB, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "hm_bench: %s\n", dlerror());
		return 3;
	}
	snprintf(tgt, sizeof(tgt), "%s/kube/b", HM_TEST_DIR);
	{
		mount_fn hm = (mount_fn)dlsym(h, "hostmount_mount");
		umount2_fn hu = (umount2_fn)dlsym(h, "hostmount_umount2");
		int n = 200;
		double plain, shim;

		if (!hm || !hu) {
			fprintf(stderr, "hm_bench: %s is not the shim\n", HM_LIB);
			return 3;
		}
		plain = mount_pairs(n, mount, umount2, tgt);
		shim = mount_pairs(n, hm, hu, tgt);

		printf("tmpfs mount+umount2 x%d: plain %.1f us, through the shim "
		       "(fork+setns per call) %.1f us per pair\n",
		       n, plain / n * 1e6, shim / n * 1e6);
	}
	return 0;
}
