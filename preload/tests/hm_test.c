/*
 * hm_test: tests for libhostmount.so, run as root by `make -C preload test`.
 *
 * Everything happens in throwaway mount namespaces, so the real host's mount
 * table is never touched:
 *   - main unshares a private "host" namespace and mounts a tmpfs on
 *     HM_TEST_DIR; the shim reaches this namespace through
 *     /proc/<main pid>/fd/<fd of /proc/self/ns/mnt>, as a runc container
 *     reaches the wrapper's fd through /proc/1/fd/3;
 *   - every case runs in a forked child that unshares again (the
 *     "container"; all mounts are private, nothing propagates either way),
 *     mounts a tmpfs over HM_TEST_DIR/etc, writes the test build's compiled-in
 *     hostmount.conf there and runs hm_call (or util-linux mount) with
 *     LD_PRELOAD of the test build of the shim;
 *   - a mount is "on the host" when /proc/<main pid>/mountinfo lists it and
 *     "in the container" when the case's own /proc/self/mountinfo does.
 * When main exits, its namespaces and every mount in them go away.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef HM_TEST_DIR
#error "build with -DHM_TEST_DIR, -DHM_CALL, -DHM_LIB, -DHM_PROD_LIB (Makefile)"
#endif
#define HM_TEST_CONF HM_TEST_DIR "/etc/hostmount.conf"
#define PROD_CONF "/.runc-shared/hostmount.conf"

static struct counters {
	int pass, fail;
} *cnt;

static pid_t hostpid;
static int hostfd;
static char mntns[64];

/* ---- reporting ---- */

__attribute__((format(printf, 2, 3))) static void check(int ok,
							 const char *fmt, ...)
{
	va_list ap;

	printf("  %s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	__atomic_add_fetch(ok ? &cnt->pass : &cnt->fail, 1, __ATOMIC_SEQ_CST);
}

static const char *ename(int e)
{
	const char *n;

	if (e == 0)
		return "0";
	if (e >= 200)
		return "harness error";
	n = strerrorname_np(e);
	return n ? n : "?";
}

/* ---- paths ---- */

/* P returns HM_TEST_DIR/root/<rel> in one of a few rotating buffers. */
static const char *P(const char *rel)
{
	static char buf[16][PATH_MAX];
	static int i;
	char *b = buf[i++ % 16];

	snprintf(b, PATH_MAX, "%s/root%s%s", HM_TEST_DIR, rel[0] ? "/" : "",
		 rel);
	return b;
}

static void mk(const char *rel)
{
	char cmd[PATH_MAX + 16];
	const char *p = P(rel);

	if (mkdir(p, 0755) < 0 && errno != EEXIST) {
		snprintf(cmd, sizeof(cmd), "mkdir %s", p);
		perror(cmd);
		exit(3);
	}
}

static void touch(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

	if (fd >= 0)
		close(fd);
}

/* hostp returns path as reached from the case's namespace into the host
 * namespace through /proc/<main pid>/root. */
static const char *hostp(const char *rel)
{
	static char buf[4][PATH_MAX];
	static int i;
	char *b = buf[i++ % 4];

	snprintf(b, PATH_MAX, "/proc/%d/root%s", (int)hostpid, P(rel));
	return b;
}

/* ---- mountinfo ---- */

struct mi {
	int found;
	char fstype[64];
	char opts[256];
	char optional[256];
};

/* mi_scan reads the mount table of pid (0: this process) and calls fn for
 * every line whose mount point is HM_TEST_DIR/root/<rel> (with below: or
 * lies below it), split into fields; dash is the index of "-". */
static void mi_scan(pid_t pid, const char *rel, int below,
		    void (*fn)(char **fld, int dash, void *arg), void *arg)
{
	char path[64], *line = NULL, want[PATH_MAX * 4], *w = want;
	size_t cap = 0, wlen;
	FILE *f;

	/* mountinfo escapes space, tab, newline and backslash as \ooo */
	for (const char *p = P(rel); *p; p++)
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\\')
			w += sprintf(w, "\\%03o", (unsigned char)*p);
		else
			*w++ = *p;
	*w = '\0';
	wlen = strlen(want);

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/mountinfo");
	f = fopen(path, "re");
	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *fld[32];
		int n = 0, dash = -1;

		for (char *t = strtok_r(line, " \n", &save); t && n < 32;
		     t = strtok_r(NULL, " \n", &save)) {
			if (strcmp(t, "-") == 0 && dash < 0)
				dash = n;
			fld[n++] = t;
		}
		if (n < 7 || dash < 6 || dash + 1 >= n)
			continue;
		if (strcmp(fld[4], want) != 0 &&
		    !(below && strncmp(fld[4], want, wlen) == 0 &&
		      fld[4][wlen] == '/'))
			continue;
		fn(fld, dash, arg);
	}
	free(line);
	fclose(f);
}

static void mi_top(char **fld, int dash, void *arg)
{
	struct mi *m = arg;

	m->found = 1;
	snprintf(m->opts, sizeof(m->opts), "%s", fld[5]);
	snprintf(m->fstype, sizeof(m->fstype), "%s", fld[dash + 1]);
	m->optional[0] = '\0';
	for (int k = 6; k < dash; k++) {
		strncat(m->optional, fld[k],
			sizeof(m->optional) - strlen(m->optional) - 2);
		strcat(m->optional, " ");
	}
}

/* find returns the topmost mount at HM_TEST_DIR/root/<rel> in the mount
 * namespace of pid (0: this process). */
static struct mi find(pid_t pid, const char *rel)
{
	struct mi m = { 0 };

	mi_scan(pid, rel, 0, mi_top, &m);
	return m;
}

static void mi_count(char **fld, int dash, void *arg)
{
	(void)fld, (void)dash;
	(*(int *)arg)++;
}

/* count returns how many mounts lie at or below HM_TEST_DIR/root/<rel> in
 * the mount namespace of pid (0: this process). */
static int count(pid_t pid, const char *rel)
{
	int k = 0;

	mi_scan(pid, rel, 1, mi_count, &k);
	return k;
}

static int on_host(const char *rel)
{
	return find(hostpid, rel).found;
}

static int in_cont(const char *rel)
{
	return find(0, rel).found;
}

/* ---- running commands ---- */

struct res {
	int rc; /* exit status: the errno of the call; 300+: died */
	char err[4096];
	int lines; /* "libhostmount: " lines on stderr */
};

static struct res runv(int preload, const char *const argv[])
{
	struct res r = { 0 };
	int p[2], st;
	size_t n = 0;
	ssize_t k;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		exit(3);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 2);
		if (preload)
			setenv("LD_PRELOAD", HM_LIB, 1);
		else
			unsetenv("LD_PRELOAD");
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while ((k = read(p[0], r.err + n, sizeof(r.err) - 1 - n)) > 0)
		n += (size_t)k;
	close(p[0]);
	r.err[n] = '\0';
	waitpid(pid, &st, 0);
	r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 300 + WTERMSIG(st);
	for (const char *s = r.err; (s = strstr(s, "libhostmount: ")); s++)
		r.lines++;
	if (r.err[0] && !r.lines)
		printf("    stderr: %s", r.err);
	return r;
}

/* call runs hm_call with the shim preloaded: call("mount", ..., NULL). */
#define call(...) callv(1, (const char *[]){ HM_CALL, __VA_ARGS__, NULL })
#define call_nopreload(...)                                                    \
	callv(0, (const char *[]){ HM_CALL, __VA_ARGS__, NULL })

static struct res callv(int preload, const char **argv)
{
	return runv(preload, argv);
}

/* ---- cases ---- */

static char *conf_std(const char *extra)
{
	char *s;

	if (asprintf(&s, "# test config\nmntns %s\nallow %s   # trailing comment\n%s",
		     mntns, P("kube"), extra ? extra : "") < 0)
		exit(3);
	return s;
}

static void run_case(const char *name, const char *conf, void (*fn)(void))
{
	pid_t pid;
	int st;

	printf("# %s\n", name);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount("tmpfs", HM_TEST_DIR "/etc", "tmpfs", 0, "size=1m") < 0) {
			perror("container setup");
			_exit(3);
		}
		if (conf) {
			FILE *f = fopen(HM_TEST_CONF, "we");

			if (!f || fputs(conf, f) < 0 || fclose(f) != 0) {
				perror("write config");
				_exit(3);
			}
		}
		fn();
		_exit(0);
	}
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		check(0, "case process exited with status 0x%x", st);
}

/* expect checks rc and where the mount at rel ended up. */
static void expect(const struct res *r, int rc, const char *rel, int host,
		   int cont, const char *what)
{
	check(r->rc == rc, "%s: errno %s (want %s)", what, ename(r->rc),
	      ename(rc));
	if (rel) {
		check(on_host(rel) == host, "%s: %s on the host", what,
		      host ? "mounted" : "not mounted");
		check(in_cont(rel) == cont, "%s: %s in the container", what,
		      cont ? "mounted" : "not mounted");
	}
}

static void case_tmpfs(void)
{
	struct res r;

	mk("kube/a");
	r = call("mount", "tmpfs", P("kube/a"), "tmpfs", "-", "size=1m");
	expect(&r, 0, "kube/a", 1, 0, "tmpfs on an allowlisted target");
	check(r.err[0] == '\0', "tmpfs on an allowlisted target: nothing on stderr");
	check(strcmp(find(hostpid, "kube/a").fstype, "tmpfs") == 0,
	      "the host mount is a tmpfs");

	mk("kube");
	mk("kube/t");
	{
		char tgt[PATH_MAX];

		snprintf(tgt, sizeof(tgt), "%s/", P("kube/t"));
		r = call("mount", "tmpfs", tgt, "tmpfs", "-", "-");
		expect(&r, 0, "kube/t", 1, 0, "target with a trailing slash");
	}
	mk("kube/mt");
	r = call("-t", "mount", "tmpfs", P("kube/mt"), "tmpfs", "-", "-");
	expect(&r, 0, "kube/mt", 1, 0, "call from a multi-threaded process");
	mk("kube/rel");
	r = call("-C", P("kube"), "mount", "tmpfs", "rel", "tmpfs", "-", "-");
	expect(&r, 0, "kube/rel", 1, 0, "relative target (cwd inside the allowlist)");
	mk("kube/sig1");
	r = call("-s", "ign", "mount", "tmpfs", P("kube/sig1"), "tmpfs", "-", "-");
	expect(&r, 0, "kube/sig1", 1, 0, "caller ignores SIGCHLD");
	r = call("-s", "reap", "mount", "tmpfs", P("kube/missing"), "tmpfs", "-",
		 "-");
	expect(&r, ENOENT, "kube/missing", 0, 0,
	       "caller's SIGCHLD handler reaps every child");
}

static void case_errno(void)
{
	struct res r;

	r = call("mount", "tmpfs", P("kube/nonexistent"), "tmpfs", "-", "-");
	expect(&r, ENOENT, "kube/nonexistent", 0, 0,
	       "allowlisted target that does not exist");
	check(r.lines == 0, "ENOENT from the kernel is not logged");
	mk("kube/e1");
	r = call("mount", "x", P("kube/e1"), "nosuchfs", "-", "-");
	expect(&r, ENODEV, "kube/e1", 0, 0, "unknown file system type");
	r = call("umount2", P("kube/e1"), "-");
	expect(&r, EINVAL, NULL, 0, 0, "umount2 of a directory that is no mount");
	touch(P("kube/file"));
	r = call("mount", "tmpfs", P("kube/file/x"), "tmpfs", "-", "-");
	expect(&r, ENOTDIR, NULL, 0, 0, "target below a regular file");
	r = call("mount", "tmpfs", P("kube/e1"), "tmpfs", "remount,rdonly", "-");
	expect(&r, EINVAL, NULL, 0, 0, "remount of a directory that is no mount");
}

static void case_outside(void)
{
	struct res r;

	mk("other/x");
	r = call("mount", "tmpfs", P("other/x"), "tmpfs", "-", "-");
	expect(&r, 0, "other/x", 0, 1, "target outside the allowlist");
	mk("kube-evil/x");
	r = call("mount", "tmpfs", P("kube-evil/x"), "tmpfs", "-", "-");
	expect(&r, 0, "kube-evil/x", 0, 1,
	       "prefix sibling (allow .../kube, target .../kube-evil/x)");
	mk("kube-evil");
	r = call("mount", "tmpfs", P("kube-evil"), "tmpfs", "-", "-");
	expect(&r, 0, "kube-evil", 0, 1, "prefix sibling itself");
	mk("other/y");
	{
		char tgt[PATH_MAX];

		snprintf(tgt, sizeof(tgt), "%s/../other/y", P("kube"));
		r = call("mount", "tmpfs", tgt, "tmpfs", "-", "-");
		expect(&r, 0, "other/y", 0, 1, "kube/../other/y");
		mk("kube/sub");
		mk("kube/z");
		snprintf(tgt, sizeof(tgt), "%s/../z", P("kube/sub"));
		r = call("mount", "tmpfs", tgt, "tmpfs", "-", "-");
		expect(&r, 0, "kube/z", 1, 0, "kube/sub/../z stays allowlisted");
	}
	/* symlinks: resolved before the comparison */
	mk("other/z");
	if (symlink("../other/z", P("kube/lnk")) < 0)
		perror("symlink");
	r = call("mount", "tmpfs", P("kube/lnk"), "tmpfs", "-", "-");
	expect(&r, 0, "other/z", 0, 1, "allowlisted symlink to outside");
	mk("kube/w");
	if (symlink("../kube/w", P("other/lnk2")) < 0)
		perror("symlink");
	r = call("mount", "tmpfs", P("other/lnk2"), "tmpfs", "-", "-");
	expect(&r, 0, "kube/w", 1, 0, "outside symlink to an allowlisted dir");
	mk("other/dirlink-target");
	if (symlink("../other", P("kube/dirlink")) < 0)
		perror("symlink");
	{
		char tgt[PATH_MAX];

		snprintf(tgt, sizeof(tgt), "%s/dirlink-target", P("kube/dirlink"));
		r = call("mount", "tmpfs", tgt, "tmpfs", "-", "-");
		expect(&r, 0, "other/dirlink-target", 0, 1,
		       "symlinked parent directory pointing outside");
	}
}

static void case_umount(void)
{
	struct res r;

	mk("kube/u1");
	r = call("mount", "tmpfs", P("kube/u1"), "tmpfs", "-", "-");
	expect(&r, 0, "kube/u1", 1, 0, "mount kube/u1");
	r = call("umount2", P("kube/u1"), "-");
	expect(&r, 0, "kube/u1", 0, 0, "umount2 removes the host mount");
	mk("kube/u2");
	r = call("mount", "tmpfs", P("kube/u2"), "tmpfs", "-", "-");
	r = call("umount", P("kube/u2"));
	expect(&r, 0, "kube/u2", 0, 0, "umount removes the host mount");
	mk("kube/u3");
	r = call("mount", "tmpfs", P("kube/u3"), "tmpfs", "-", "-");
	touch(hostp("kube/u3/busy"));
	r = call("umount2", P("kube/u3"), "detach");
	expect(&r, 0, "kube/u3", 0, 0, "umount2 MNT_DETACH removes the host mount");
	mk("other/u4");
	r = call("mount", "tmpfs", P("other/u4"), "tmpfs", "-", "-");
	r = call("umount2", P("other/u4"), "-");
	expect(&r, 0, "other/u4", 0, 0, "umount2 outside the allowlist (local)");
	mk("kube/u5");
	r = call("mount", "tmpfs", P("kube/u5"), "tmpfs", "-", "-");
	if (symlink("u5", P("kube/u5link")) < 0)
		perror("symlink");
	r = call("umount2", P("kube/u5link"), "nofollow");
	expect(&r, EINVAL, "kube/u5", 1, 0, "umount2 UMOUNT_NOFOLLOW on a symlink");
	r = call("umount2", P("kube/u5link"), "-");
	expect(&r, 0, "kube/u5", 0, 0, "umount2 through a symlink");
}

static void case_util_linux(void)
{
	struct res r;

	mk("kube/m");
	r = runv(1, (const char *[]){ "/bin/mount", "-t", "tmpfs", "-o", "size=2m",
				     "hm-tmpfs", P("kube/m"), NULL });
	expect(&r, 0, "kube/m", 1, 0, "util-linux mount -t tmpfs");
	r = runv(1, (const char *[]){ "/bin/mount", "--make-shared", P("kube/m"),
				     NULL });
	check(r.rc == 0 && strstr(find(hostpid, "kube/m").optional, "shared:"),
	      "util-linux mount --make-shared: exit %d, host optional fields '%s'",
	      r.rc, find(hostpid, "kube/m").optional);
	r = runv(1, (const char *[]){ "/bin/mount", "-o", "remount,ro",
				     P("kube/m"), NULL });
	check(r.rc == 0 && strncmp(find(hostpid, "kube/m").opts, "ro", 2) == 0,
	      "util-linux mount -o remount,ro: exit %d, host options '%s'", r.rc,
	      find(hostpid, "kube/m").opts);
	r = runv(1, (const char *[]){ "/bin/umount", P("kube/m"), NULL });
	expect(&r, 0, "kube/m", 0, 0, "util-linux umount");
	mk("other/m");
	r = runv(1, (const char *[]){ "/bin/mount", "-t", "tmpfs", "hm-tmpfs",
				     P("other/m"), NULL });
	expect(&r, 0, "other/m", 0, 1, "util-linux mount outside the allowlist");
}

static void case_flags(void)
{
	struct res r;
	struct mi m;

	/* MS_REMOUNT goes to the host (the container has no mount there) */
	mk("kube/r");
	r = call("mount", "tmpfs", P("kube/r"), "tmpfs", "-", "-");
	r = call("mount", "-", P("kube/r"), "-", "remount,rdonly", "-");
	m = find(hostpid, "kube/r");
	check(r.rc == 0 && strncmp(m.opts, "ro", 2) == 0,
	      "MS_REMOUNT|MS_RDONLY: errno %s, host options '%s'", ename(r.rc),
	      m.opts);
	/* propagation changes go to the host */
	mk("kube/s");
	r = call("mount", "tmpfs", P("kube/s"), "tmpfs", "-", "-");
	r = call("mount", "-", P("kube/s"), "-", "shared", "-");
	m = find(hostpid, "kube/s");
	check(r.rc == 0 && strstr(m.optional, "shared:"),
	      "MS_SHARED: errno %s, host optional fields '%s'", ename(r.rc),
	      m.optional);
	/* MS_BIND from a container-only mount: copied onto the host */
	mk("other/bsrc");
	mk("kube/b");
	if (mount("tmpfs", P("other/bsrc"), "tmpfs", 0, NULL) < 0)
		perror("mount other/bsrc");
	touch(P("other/bsrc/marker"));
	r = call("mount", P("other/bsrc"), P("kube/b"), "-", "bind", "-");
	expect(&r, 0, "kube/b", 1, 0, "MS_BIND of a container path");
	check(access(hostp("kube/b/marker"), F_OK) == 0,
	      "MS_BIND of a container path: the host sees its content");
	/* MS_BIND between allowlisted paths happens on the host */
	mk("kube/hs");
	mk("kube/hd");
	r = call("mount", "tmpfs", P("kube/hs"), "tmpfs", "-", "-");
	touch(hostp("kube/hs/hostmarker"));
	r = call("mount", P("kube/hs"), P("kube/hd"), "-", "bind", "-");
	expect(&r, 0, "kube/hd", 1, 0, "MS_BIND between allowlisted paths");
	check(access(hostp("kube/hd/hostmarker"), F_OK) == 0,
	      "MS_BIND between allowlisted paths binds the host's mount");
	r = call("mount", P("kube/nosuch"), P("kube/hd"), "-", "bind", "-");
	expect(&r, ENOENT, NULL, 0, 0, "MS_BIND of a missing container path");
	/* MS_BIND onto a target outside the allowlist stays local */
	mk("other/bd");
	r = call("mount", P("other/bsrc"), P("other/bd"), "-", "bind", "-");
	expect(&r, 0, "other/bd", 0, 1, "MS_BIND outside the allowlist");
	/* MS_MOVE between allowlisted paths happens on the host */
	mk("kube/mv1");
	mk("kube/mv2");
	r = call("mount", "tmpfs", P("kube/mv1"), "tmpfs", "-", "-");
	r = call("mount", P("kube/mv1"), P("kube/mv2"), "-", "move", "-");
	expect(&r, 0, "kube/mv2", 1, 0, "MS_MOVE between allowlisted paths");
	check(!on_host("kube/mv1"), "MS_MOVE: the source is gone on the host");
	/* MS_MOVE of a container mount cannot leave the container */
	mk("other/mvsrc");
	mk("kube/mv3");
	if (mount("tmpfs", P("other/mvsrc"), "tmpfs", 0, NULL) < 0)
		perror("mount other/mvsrc");
	r = call("mount", P("other/mvsrc"), P("kube/mv3"), "-", "move", "-");
	expect(&r, 0, "kube/mv3", 0, 1, "MS_MOVE of a container mount (local)");
}

static void case_new_api(void)
{
	struct res r;
	struct mi m;

	mk("kube/n1");
	r = call("fsmount", "tmpfs", P("kube/n1"));
	expect(&r, 0, "kube/n1", 1, 0,
	       "fsmount + move_mount to an allowlisted target");
	mk("other/n2");
	r = call("fsmount", "tmpfs", P("other/n2"));
	expect(&r, 0, "other/n2", 0, 1, "fsmount + move_mount outside the allowlist");
	mk("kube/n3");
	r = call("fsmount", "tmpfs", P("kube/n3"), "shared");
	m = find(hostpid, "kube/n3");
	check(r.rc == 0 && m.found && strstr(m.optional, "shared:"),
	      "libmount 2.39 sequence (mount_setattr on the moved fd): errno %s, "
	      "host optional fields '%s'",
	      ename(r.rc), m.optional);
	r = call("fsmount", "tmpfs", P("kube/n-missing"));
	expect(&r, ENOENT, "kube/n-missing", 0, 0, "move_mount to a missing target");
	/* open_tree clone (a bind through the new API) */
	mk("other/tsrc");
	mk("kube/tb");
	if (mount("tmpfs", P("other/tsrc"), "tmpfs", 0, NULL) < 0)
		perror("mount other/tsrc");
	touch(P("other/tsrc/treemarker"));
	r = call("treebind", P("other/tsrc"), P("kube/tb"));
	expect(&r, 0, "kube/tb", 1, 0, "open_tree clone + move_mount");
	check(access(hostp("kube/tb/treemarker"), F_OK) == 0,
	      "open_tree clone + move_mount: the host sees its content");
	/* move_mount by path between allowlisted paths */
	mk("kube/nm1");
	mk("kube/nm2");
	r = call("mount", "tmpfs", P("kube/nm1"), "tmpfs", "-", "-");
	r = call("movemount", P("kube/nm1"), P("kube/nm2"));
	expect(&r, 0, "kube/nm2", 1, 0,
	       "move_mount by path between allowlisted paths");
	/* mount_setattr by path */
	mk("kube/sa");
	r = call("mount", "tmpfs", P("kube/sa"), "tmpfs", "-", "-");
	r = call("setattr", P("kube/sa"), "shared");
	m = find(hostpid, "kube/sa");
	check(r.rc == 0 && strstr(m.optional, "shared:"),
	      "mount_setattr by path: errno %s, host optional fields '%s'",
	      ename(r.rc), m.optional);
}

/* The allowlisted prefix itself is a mount on the host (pfx, see main):
 * umount2 of it, not lazy, removes it. */
static void case_umount_prefix(void)
{
	struct res r;

	r = call("umount2", P("pfx"), "-");
	expect(&r, 0, "pfx", 0, 1, "umount2 of the allowlisted prefix itself");
}

static void case_prop_fd(void)
{
	struct res r;
	struct mi m;

	/* kube is a mount point of its own here (see main); libmount 2.39
	 * opens it with open_tree and sets propagation on the fd. */
	r = call("setattr-fd", P("prop"), "shared");
	m = find(hostpid, "prop");
	check(r.rc == 0 && strstr(m.optional, "shared:"),
	      "mount_setattr on an open_tree fd of an allowlisted mount: errno "
	      "%s, host optional fields '%s'",
	      ename(r.rc), m.optional);
	check(!strstr(find(0, "prop").optional, "shared:"),
	      "... and the container's copy is unchanged");
}

/*
 * The host's view of an allowlisted path is not the one the shim resolved:
 * in the container (allow cview2 hview2) x and d are directories, on the
 * host hview2/x and hview2/d are symlinks to directories outside the
 * allowlist, as they are for a moment when a process that can write below
 * the allowlist swaps them. Every call must refuse with ELOOP and leave the
 * outside alone: other/hd/y is a host mount there that nothing may touch.
 */
static void case_host_symlink(void)
{
	struct res r;
	struct mi m;

	mk("other/tsrc2");
	if (mount("tmpfs", P("other/tsrc2"), "tmpfs", 0, NULL) < 0)
		perror("mount other/tsrc2");
	r = call("mount", "tmpfs", P("cview2/x"), "tmpfs", "-", "-");
	expect(&r, ELOOP, "other/hx", 0, 0, "mount on a target that is a symlink on the host");
	check(r.lines == 1, "... one log line (%d): %s", r.lines, r.err);
	r = call("mount", "tmpfs", P("cview2/d/y"), "tmpfs", "-", "-");
	check(r.rc == ELOOP && count(hostpid, "other/hd") == 1,
	      "mount below a directory that is a symlink on the host: errno %s "
	      "(want ELOOP), %d host mounts at other/hd (want 1)",
	      ename(r.rc), count(hostpid, "other/hd"));
	r = call("fsmount", "tmpfs", P("cview2/x"));
	expect(&r, ELOOP, "other/hx", 0, 0, "fsmount + move_mount to it");
	r = call("treebind", P("other/tsrc2"), P("cview2/x"));
	expect(&r, ELOOP, "other/hx", 0, 0, "open_tree clone + move_mount to it");
	r = call("mount", P("other/tsrc2"), P("cview2/x"), "-", "bind", "-");
	expect(&r, ELOOP, "other/hx", 0, 0, "MS_BIND of a container path to it");
	r = call("mount", P("cview2/d/y"), P("cview2/ok"), "-", "bind", "-");
	expect(&r, ELOOP, "hview2/ok", 0, 0,
	       "MS_BIND from an allowlisted source that is a symlink on the host");
	r = call("mount", P("cview2/d/y"), P("cview2/ok"), "-", "move", "-");
	check(r.rc == ELOOP && !on_host("hview2/ok") && on_host("other/hd/y"),
	      "MS_MOVE from it: errno %s (want ELOOP), the outside mount stays",
	      ename(r.rc));
	r = call("movemount", P("cview2/d/y"), P("cview2/ok"));
	check(r.rc == ELOOP && !on_host("hview2/ok") && on_host("other/hd/y"),
	      "move_mount by path from it: errno %s (want ELOOP), the outside "
	      "mount stays",
	      ename(r.rc));
	r = call("mount", "-", P("cview2/d/y"), "-", "remount,rdonly", "-");
	m = find(hostpid, "other/hd/y");
	check(r.rc == ELOOP && strncmp(m.opts, "rw", 2) == 0,
	      "MS_REMOUNT through it: errno %s (want ELOOP), outside options '%s'",
	      ename(r.rc), m.opts);
	r = call("mount", "-", P("cview2/d/y"), "-", "shared", "-");
	m = find(hostpid, "other/hd/y");
	check(r.rc == ELOOP && !strstr(m.optional, "shared:"),
	      "MS_SHARED through it: errno %s (want ELOOP), outside optional "
	      "fields '%s'",
	      ename(r.rc), m.optional);
	r = call("setattr", P("cview2/d/y"), "shared");
	m = find(hostpid, "other/hd/y");
	check(r.rc == ELOOP && !strstr(m.optional, "shared:"),
	      "mount_setattr through it: errno %s (want ELOOP), outside optional "
	      "fields '%s'",
	      ename(r.rc), m.optional);
	r = call("umount2", P("cview2/d/y"), "-");
	check(r.rc == ELOOP && on_host("other/hd/y"),
	      "umount2 through it: errno %s (want ELOOP), the outside mount stays",
	      ename(r.rc));
	r = call("umount", P("cview2/d/y"));
	check(r.rc == ELOOP && on_host("other/hd/y"),
	      "umount through it: errno %s (want ELOOP), the outside mount stays",
	      ename(r.rc));
	/* the same configuration still serves a path that is the same on both
	 * sides */
	r = call("mount", "tmpfs", P("cview2/ok2"), "tmpfs", "-", "-");
	expect(&r, 0, "hview2/ok2", 1, 0, "a plain directory on both sides");
	r = call("umount2", P("cview2/ok2"), "-");
	expect(&r, 0, "hview2/ok2", 0, 0, "... and its umount2");
}

/* flipper swaps kube/<name> (a directory) and kube/.<name>-other (a symlink
 * to a directory outside the allowlist) until it is killed: each name always
 * exists, now the directory, now the symlink. It runs in the "host"
 * namespace, as a process that can write below the allowlist on the host
 * does. A directory that is a mount point there cannot be renamed (EBUSY):
 * with clear set, it then detaches what is mounted at either name and counts
 * it in *cleared, so that the race goes on at the target itself. */
static pid_t flipper(const char *name, int clear, int *cleared)
{
	char a[PATH_MAX], b[PATH_MAX];
	pid_t pid;

	snprintf(a, sizeof(a), "%s/kube/%s", P(""), name);
	snprintf(b, sizeof(b), "%s/kube/.%s-other", P(""), name);
	pid = fork();
	if (pid == 0) {
		if (setns(hostfd, CLONE_NEWNS) < 0)
			_exit(errno);
		for (;;) {
			if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0) {
				usleep(20);
				continue;
			}
			if (errno != EBUSY || !clear)
				_exit(errno);
			while (umount2(a, MNT_DETACH | UMOUNT_NOFOLLOW) == 0 ||
			       umount2(b, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
				__atomic_add_fetch(cleared, 1, __ATOMIC_SEQ_CST);
		}
	}
	return pid;
}

/* stop_flipper kills it and leaves kube/<name> the directory. */
static void stop_flipper(pid_t pid, const char *name)
{
	char a[PATH_MAX], b[PATH_MAX];
	struct stat st;
	int status;

	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	check(WIFSIGNALED(status),
	      "the flipper of %s ran until it was stopped (it exited with %s)",
	      name, WIFEXITED(status) ? ename(WEXITSTATUS(status)) : "-");
	snprintf(a, sizeof(a), "%s/kube/%s", P(""), name);
	snprintf(b, sizeof(b), "%s/kube/.%s-other", P(""), name);
	if (lstat(a, &st) == 0 && S_ISLNK(st.st_mode))
		renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

struct tally {
	int ok, loop, other;
};

static void tally(struct tally *t, const struct res *r, int also)
{
	if (r->rc == 0)
		t->ok++;
	else if (r->rc == ELOOP || (also && r->rc == also))
		t->loop++;
	else if (t->other++ == 0)
		printf("    unexpected errno %s: %s\n", ename(r->rc), r->err);
}

/*
 * The flipper race. While kube/flip turns into a symlink to ../other/fout
 * and back, the container mounts at kube/flip again and again; while
 * kube/flip2 does the same with ../other/fout2, it mounts at kube/flip2/sub
 * and unmounts kube/flip2/sub2, where the host has a mount at the real
 * directory and one outside, at other/fout2/sub2, that must survive. No call
 * may act outside the allowlist on the host, what is refused is refused with
 * ELOOP, and mounts at the real directories still land on the host.
 */
enum { FLIP_CALLS = 200 };

static void case_flipper(void)
{
	struct tally m1 = { 0 }, m2 = { 0 }, u = { 0 };
	int *cleared = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int before;
	struct res r;
	pid_t fl;

	if (cleared == MAP_FAILED)
		exit(3);
	*cleared = 0;
	fl = flipper("flip", 1, cleared);
	for (int i = 0; i < FLIP_CALLS; i++) {
		r = call("mount", "tmpfs", P("kube/flip"), "tmpfs", "-", "size=64k");
		tally(&m1, &r, 0);
	}
	stop_flipper(fl, "flip");
	fl = flipper("flip2", 0, NULL);
	for (int i = 0; i < FLIP_CALLS; i++) {
		r = call("mount", "tmpfs", P("kube/flip2/sub"), "tmpfs", "-",
			 "size=64k");
		tally(&m2, &r, 0);
		r = call("umount2", P("kube/flip2/sub2"), "-");
		tally(&u, &r, EINVAL);
	}
	stop_flipper(fl, "flip2");
	printf("    mount kube/flip: %d done, %d ELOOP, %d found on the real "
	       "directory by the flipper; mount kube/flip2/sub: %d done, %d "
	       "ELOOP; umount2 kube/flip2/sub2: %d done, %d ELOOP or EINVAL\n",
	       m1.ok, m1.loop, *cleared, m2.ok, m2.loop, u.ok, u.loop);
	check(count(hostpid, "other/fout") == 0,
	      "flipper at the target: nothing mounted outside the allowlist on "
	      "the host (%d mounts at or below other/fout)",
	      count(hostpid, "other/fout"));
	check(count(hostpid, "other/fout2") == 1 && on_host("other/fout2/sub2"),
	      "flipper at a parent: nothing mounted or unmounted outside the "
	      "allowlist on the host (%d mounts at or below other/fout2, want "
	      "only the outside sub2)",
	      count(hostpid, "other/fout2"));
	check(m1.other == 0 && m2.other == 0 && u.other == 0,
	      "flipper: every call returns 0 or ELOOP (umount2 also EINVAL)");
	check(*cleared > 0 && count(hostpid, "kube/flip2/sub") > 0,
	      "flipper: mounts at the real directories still land on the host");
	before = count(hostpid, "kube/flip2/sub");
	r = call("mount", "tmpfs", P("kube/flip2/sub"), "tmpfs", "-", "-");
	check(r.rc == 0 && count(hostpid, "kube/flip2/sub") == before + 1,
	      "after the flipper: a mount at kube/flip2/sub lands on the host");
}

static void case_fstype(void)
{
	struct res r;

	mk("kube/f1");
	r = call("mount", "tmpfs", P("kube/f1"), "tmpfs", "-", "-");
	expect(&r, 0, "kube/f1", 0, 1, "fstype filter: tmpfs stays local");
	mk("kube/f2");
	r = call("fuse", P("kube/f2"), "fuse.glusterfs");
	expect(&r, 0, "kube/f2", 1, 0,
	       "fstype filter: fuse.glusterfs with an inherited fd=N");
	check(strcmp(find(hostpid, "kube/f2").fstype, "fuse.glusterfs") == 0,
	      "the host mount is fuse.glusterfs");
	r = call("umount2", P("kube/f2"), "detach");
	expect(&r, 0, "kube/f2", 0, 0, "umount2 of the FUSE mount (no type filter)");
	mk("kube/f3");
	r = call("fsmount", "tmpfs", P("kube/f3"));
	expect(&r, 0, "kube/f3", 0, 1, "fstype filter applies to fsopen+move_mount");
	mk("kube/f4");
	r = call("mount", "x", P("kube/f4"), "glusterfs", "-", "-");
	expect(&r, ENODEV, "kube/f4", 0, 0,
	       "fstype filter: glusterfs goes to the host (no such kernel fs)");
}

static void case_nsfail_missing(void)
{
	struct res r;

	mk("kube/n");
	r = call("mount", "tmpfs", P("kube/n"), "tmpfs", "-", "-");
	expect(&r, ENOENT, "kube/n", 0, 0, "namespace source missing");
	check(r.lines == 1 && strncmp(r.err, "libhostmount: ", 14) == 0,
	      "namespace source missing: one log line (%d): %s", r.lines, r.err);
	r = call("umount2", P("kube/n"), "-");
	check(r.rc == ENOENT && r.lines == 1,
	      "namespace source missing: umount2 fails too (errno %s)",
	      ename(r.rc));
	mk("other/n");
	r = call("mount", "tmpfs", P("other/n"), "tmpfs", "-", "-");
	expect(&r, 0, "other/n", 0, 1,
	       "namespace source missing: targets outside still work");
}

static void case_nsfail_notns(void)
{
	struct res r;

	mk("kube/nn");
	r = call("mount", "tmpfs", P("kube/nn"), "tmpfs", "-", "-");
	expect(&r, EINVAL, "kube/nn", 0, 0,
	       "namespace source is not a mount namespace");
	check(r.lines == 1, "... one log line: %s", r.err);
}

static void case_nsfail_noline(void)
{
	struct res r;

	mk("kube/nl");
	r = call("mount", "tmpfs", P("kube/nl"), "tmpfs", "-", "-");
	expect(&r, EINVAL, "kube/nl", 0, 0, "no mntns line");
	check(r.lines == 1, "... one log line: %s", r.err);
}

static void case_passthrough(void)
{
	struct res r;

	mk("kube/p");
	r = call("mount", "tmpfs", P("kube/p"), "tmpfs", "-", "-");
	expect(&r, 0, "kube/p", 0, 1, "pass-through");
	check(r.err[0] == '\0', "pass-through: nothing on stderr");
	r = call("umount2", P("kube/p"), "-");
	expect(&r, 0, "kube/p", 0, 0, "pass-through umount2");
}

static void case_translate(void)
{
	struct res r;

	mk("cview/x");
	mk("hview/x");
	r = call("mount", "tmpfs", P("cview/x"), "tmpfs", "-", "-");
	expect(&r, 0, "hview/x", 1, 0, "allow CONTAINER HOST translates the target");
	check(!on_host("cview/x") && !in_cont("cview/x"),
	      "... and nothing is mounted at the container path");
	mk("kube/zz");
	r = call("mount", "tmpfs", P("kube/zz"), "tmpfs", "-", "-");
	expect(&r, 0, "kube/zz", 1, 0, "allow through a symlinked prefix");
}

static void case_syntax(void)
{
	struct res r;

	mk("sp ace");
	mk("sp ace/x");
	r = call("mount", "tmpfs", P("sp ace/x"), "tmpfs", "-", "-");
	expect(&r, 0, "sp ace/x", 1, 0, "allow with an octal escape (\\040)");
	check(r.lines == 2, "one log line per malformed line (%d): %s", r.lines,
	      r.err);
	mk("kube/syn");
	r = call("mount", "tmpfs", P("kube/syn"), "tmpfs", "-", "-");
	expect(&r, 0, "kube/syn", 1, 0, "allow line after tabs and blank lines");
}

/* A host path longer than PATH_MAX: the call fails, it is not made in the
 * container instead. */
static void case_toolong(void)
{
	char name[201], tgt[PATH_MAX];
	struct res r;
	int depth = 0;

	memset(name, 'd', 200);
	name[200] = '\0';
	if (chdir(P("kube")) < 0)
		exit(3);
	/* kube/ddd.../ddd.../... up to about 3800 bytes; the host prefix is
	 * 600 bytes longer */
	while (strlen(P("kube")) + (size_t)(depth + 1) * 201 < 3800) {
		if (mkdir(name, 0755) < 0 && errno != EEXIST)
			exit(3);
		if (chdir(name) < 0)
			exit(3);
		depth++;
	}
	if (!getcwd(tgt, sizeof(tgt) - 8))
		exit(3);
	strcat(tgt, "/x");
	mkdir("x", 0755);
	r = call("mount", "tmpfs", tgt, "tmpfs", "-", "-");
	check(r.rc == ENAMETOOLONG && r.lines == 1,
	      "allowlisted target whose host path is too long: errno %s (want "
	      "ENAMETOOLONG), %d log line(s)",
	      ename(r.rc), r.lines);
	{
		char cmp[PATH_MAX];
		FILE *f = fopen("/proc/self/mountinfo", "re");
		int seen = 0;

		while (f && fgets(cmp, sizeof(cmp), f))
			seen |= strstr(cmp, "/x ") != NULL &&
				strstr(cmp, name) != NULL;
		if (f)
			fclose(f);
		check(!seen, "... and nothing is mounted in the container");
	}
}

static void case_baseline(void)
{
	struct res r;

	/* without the shim the same call stays in the container: the other
	 * cases prove something */
	mk("kube/base");
	r = call_nopreload("mount", "tmpfs", P("kube/base"), "tmpfs", "-", "-");
	expect(&r, 0, "kube/base", 0, 1, "without LD_PRELOAD");
}

static int file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "re");
	static char buf[1 << 20];
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return memmem(buf, n, needle, strlen(needle) + 1) != NULL;
}

int main(void)
{
	char *conf;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		fprintf(stderr, "hm_test: must run as root\n");
		return 2;
	}
	cnt = mmap(NULL, sizeof(*cnt), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (cnt == MAP_FAILED)
		return 3;
	if ((mkdir(HM_TEST_DIR, 0755) < 0 && errno != EEXIST) ||
	    unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", HM_TEST_DIR, "tmpfs", 0, "size=16m") < 0) {
		perror("hm_test: set up the throwaway host namespace");
		return 3;
	}
	hostpid = getpid();
	hostfd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (hostfd < 0) {
		perror("hm_test: open /proc/self/ns/mnt");
		return 3;
	}
	snprintf(mntns, sizeof(mntns), "/proc/%d/fd/%d", (int)hostpid, hostfd);
	mkdir(HM_TEST_DIR "/etc", 0755);
	mkdir(HM_TEST_DIR "/root", 0755);
	mk("kube");
	mk("kube-evil");
	mk("other");
	mk("cview");
	mk("hview");
	mk("prop");
	mk("pfx");
	if (symlink("kube", P("kubelink")) < 0 ||
	    mount("tmpfs", P("pfx"), "tmpfs", 0, "size=64k") < 0 ||
	    mount(P("prop"), P("prop"), NULL, MS_BIND, NULL) < 0) {
		perror("hm_test: setup");
		return 3;
	}

	/* the host's view differs from the container's (case_host_symlink) */
	mk("cview2");
	mk("cview2/x");
	mk("cview2/d");
	mk("cview2/d/y");
	mk("cview2/ok");
	mk("cview2/ok2");
	mk("hview2");
	mk("hview2/ok");
	mk("hview2/ok2");
	mk("other/hx");
	mk("other/hd");
	mk("other/hd/y");
	/* the flippers' directories, their symlinks and the outside
	 * (case_flipper) */
	mk("kube/flip");
	mk("kube/flip2");
	mk("kube/flip2/sub");
	mk("kube/flip2/sub2");
	mk("other/fout");
	mk("other/fout2");
	mk("other/fout2/sub");
	mk("other/fout2/sub2");
	if (symlink("../other/hx", P("hview2/x")) < 0 ||
	    symlink("../other/hd", P("hview2/d")) < 0 ||
	    symlink("../other/fout", P("kube/.flip-other")) < 0 ||
	    symlink("../other/fout2", P("kube/.flip2-other")) < 0 ||
	    mount("tmpfs", P("other/hd/y"), "tmpfs", 0, "size=64k") < 0 ||
	    mount("tmpfs", P("other/fout2/sub2"), "tmpfs", 0, "size=64k") < 0 ||
	    mount("tmpfs", P("kube/flip2/sub2"), "tmpfs", 0, "size=64k") < 0) {
		perror("hm_test: setup");
		return 3;
	}

	printf("# compiled-in configuration paths\n");
	check(file_has(HM_PROD_LIB, PROD_CONF), "%s reads %s", HM_PROD_LIB,
	      PROD_CONF);
	check(file_has(HM_LIB, HM_TEST_CONF), "%s reads %s", HM_LIB,
	      HM_TEST_CONF);

	conf = conf_std(NULL);
	run_case("baseline", conf, case_baseline);
	run_case("allowlisted tmpfs lands on the host only", conf, case_tmpfs);
	run_case("errno is the kernel's", conf, case_errno);
	run_case("targets outside the allowlist stay in the container", conf,
		 case_outside);
	run_case("umount and umount2", conf, case_umount);
	run_case("util-linux mount(8) and umount(8) under LD_PRELOAD", conf,
		 case_util_linux);
	run_case("MS_REMOUNT, propagation, MS_BIND, MS_MOVE", conf, case_flags);
	run_case("new mount API", conf, case_new_api);
	free(conf);

	if (asprintf(&conf, "mntns %s\nallow %s %s\n", mntns, P("cview2"),
		     P("hview2")) < 0)
		return 3;
	run_case("a symlink on the host where the container has a directory: "
		 "refused",
		 conf, case_host_symlink);
	free(conf);
	conf = conf_std(NULL);
	run_case("flipper: a directory below the allowlist swapped with a "
		 "symlink to outside",
		 conf, case_flipper);
	free(conf);

	conf = conf_std("fstype glusterfs\nfstype other\n");
	run_case("fstype filter", conf, case_fstype);
	free(conf);

	if (asprintf(&conf, "mntns /proc/%d/fd/9999\nallow %s\n", (int)hostpid,
		     P("kube")) < 0)
		return 3;
	run_case("namespace source missing: fail, mount nowhere", conf,
		 case_nsfail_missing);
	free(conf);
	if (asprintf(&conf, "mntns /dev/null\nallow %s\n", P("kube")) < 0)
		return 3;
	run_case("namespace source not a namespace: fail, mount nowhere", conf,
		 case_nsfail_notns);
	free(conf);
	if (asprintf(&conf, "allow %s\n", P("kube")) < 0)
		return 3;
	run_case("no mntns line: fail, mount nowhere", conf, case_nsfail_noline);
	free(conf);

	run_case("no config file: pass-through", NULL, case_passthrough);
	if (asprintf(&conf, "mntns %s\nunknown-key x\n# no allow line\n",
		     mntns) < 0)
		return 3;
	run_case("config without allow lines: pass-through", conf,
		 case_passthrough);
	free(conf);

	if (asprintf(&conf,
		     "mntns %s\nallow %s %s\nallow %s//\nfuture-key a b c\n",
		     mntns, P("cview"), P("hview"), P("kubelink")) < 0)
		return 3;
	run_case("allow with a host path, allow through a symlink", conf,
		 case_translate);
	free(conf);

	if (asprintf(&conf,
		     "allow relative/path\n\n\t  allow\t%s\t\n  mntns %s  \n"
		     "allow %s/sp\\040ace\nallow\n",
		     P("kube"), mntns, P("")) < 0)
		return 3;
	run_case("config syntax: escapes, blanks, malformed lines", conf,
		 case_syntax);
	free(conf);
	if (asprintf(&conf, "mntns %s\nallow %s %s/%0200d/%0200d/%0200d\n",
		     mntns, P("kube"), P("hview"), 0, 1, 2) < 0)
		return 3;
	run_case("host path too long", conf, case_toolong);
	free(conf);

	if (asprintf(&conf, "mntns %s\nallow %s\n", mntns, P("pfx")) < 0)
		return 3;
	run_case("umount of the allowlisted prefix", conf, case_umount_prefix);
	free(conf);

	/* last: it makes the host's prop mount shared */
	if (asprintf(&conf, "mntns %s\nallow %s\n", mntns, P("prop")) < 0)
		return 3;
	run_case("propagation on an fd (libmount 2.39 --make-shared)", conf,
		 case_prop_fd);
	free(conf);

	printf("%d passed, %d failed\n", cnt->pass, cnt->fail);
	return cnt->fail ? 1 : 0;
}
