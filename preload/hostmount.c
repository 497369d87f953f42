/*
 * libhostmount.so: an LD_PRELOAD shim that performs mount(2)-family calls
 * whose target lies under an allowlisted prefix in the host mount namespace.
 *
 * A forked, single-threaded child opens the configured namespace source,
 * setns(CLONE_NEWNS) into it and repeats the call there; the caller gets 0 or
 * -1 with the child's errno. Every other call goes to the next definition
 * (libc) unchanged. README.md has the configuration format, the decisions per
 * flag, the errno rules and what bypasses the shim.
 *
 * C11, libc only (libdl on glibc < 2.34). Nothing runs at load time: the
 * configuration is read on the first intercepted call, so processes that never
 * mount pay only for the dynamic linking of this small library.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/openat2.h>

#ifndef FSOPEN_CLOEXEC
#error "libhostmount needs <sys/mount.h> with the new mount API (glibc >= 2.36)"
#endif

/* Compiled-in configuration path; never taken from the environment. The test
 * build compiles the same source with another path. */
#ifndef HOSTMOUNT_CONF
#define HOSTMOUNT_CONF "/.runc-shared/hostmount.conf"
#endif

#define HM_EXPORT __attribute__((visibility("default")))

/*
 * dlsym is referenced weakly and bound to its first symbol version. glibc
 * 2.34 moved it from libdl into libc as dlsym@GLIBC_2.34; a shim that needed
 * that version would fail to preload in an image with an older glibc, and a
 * shim that fails to preload leaves every mount inside the container with
 * only a warning from ld.so. With the old version and a weak reference it
 * loads everywhere: the
 * lookup finds libc's compatibility dlsym (glibc >= 2.34), libdl's when the
 * program loaded libdl, or nothing, and then the shim makes the real calls
 * with syscall(2). Other architectures keep the default version.
 */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
#if defined(__x86_64__)
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
#elif defined(__aarch64__)
__asm__(".symver dlsym,dlsym@GLIBC_2.17");
#endif
#endif
extern void *dlsym(void *restrict handle, const char *restrict symbol)
	__attribute__((weak));

/* ---- the one list of intercepted symbols ----------------------------- */

/*
 * X(ret, name, params, args). For every entry the shim exports name() (the
 * interposer), implemented by the exported hostmount_name() so backtraces
 * show the shim, and finds the next definition with dlsym(RTLD_NEXT, "name")
 * on first use.
 */
#define HOSTMOUNT_SYMBOLS(X)                                                   \
	X(int, mount,                                                          \
	  (const char *source, const char *target, const char *fstype,         \
	   unsigned long flags, const void *data),                             \
	  (source, target, fstype, flags, data))                               \
	X(int, umount, (const char *target), (target))                         \
	X(int, umount2, (const char *target, int flags), (target, flags))      \
	X(int, move_mount,                                                     \
	  (int from_dfd, const char *from_path, int to_dfd,                    \
	   const char *to_path, unsigned int flags),                           \
	  (from_dfd, from_path, to_dfd, to_path, flags))                       \
	X(int, mount_setattr,                                                  \
	  (int dfd, const char *path, unsigned int flags,                      \
	   struct mount_attr *attr, size_t size),                              \
	  (dfd, path, flags, attr, size))                                      \
	X(int, fsopen, (const char *fsname, unsigned int flags),               \
	  (fsname, flags))                                                     \
	X(int, fsmount, (int fsfd, unsigned int flags, unsigned int attrs),    \
	  (fsfd, flags, attrs))

enum hm_sym {
#define HM_ENUM(ret, name, params, args) HM_SYM_##name,
	HOSTMOUNT_SYMBOLS(HM_ENUM)
#undef HM_ENUM
	HM_NSYMS
};

static const char *const hm_sym_names[HM_NSYMS] = {
#define HM_NAME(ret, name, params, args) #name,
	HOSTMOUNT_SYMBOLS(HM_NAME)
#undef HM_NAME
};

#define HM_DECLARE(ret, name, params, args)                                    \
	typedef ret(*hm_##name##_fn) params;                                   \
	HM_EXPORT ret hostmount_##name params;
HOSTMOUNT_SYMBOLS(HM_DECLARE)
#undef HM_DECLARE

#define HM_INTERPOSE(ret, name, params, args)                                  \
	HM_EXPORT ret name params { return hostmount_##name args; }
HOSTMOUNT_SYMBOLS(HM_INTERPOSE)
#undef HM_INTERPOSE

static void *hm_next_ptr[HM_NSYMS];

/* hm_next returns the next definition of symbol s, or NULL (no dlsym, or no
 * later definition): callers then fall back to the raw system call. */
static void *hm_next(enum hm_sym s)
{
	void *p = __atomic_load_n(&hm_next_ptr[s], __ATOMIC_ACQUIRE);

	if (!p && dlsym) {
		p = dlsym(RTLD_NEXT, hm_sym_names[s]);
		__atomic_store_n(&hm_next_ptr[s], p, __ATOMIC_RELEASE);
	}
	return p;
}

#define HM_NEXT(name) ((hm_##name##_fn)hm_next(HM_SYM_##name))

static int hm_real_mount(const char *source, const char *target,
			 const char *fstype, unsigned long flags,
			 const void *data)
{
	hm_mount_fn f = HM_NEXT(mount);

	if (f)
		return f(source, target, fstype, flags, data);
	return (int)syscall(SYS_mount, source, target, fstype, flags, data);
}

static int hm_real_umount(const char *target)
{
	hm_umount_fn f = HM_NEXT(umount);

	if (f)
		return f(target);
	return (int)syscall(SYS_umount2, target, 0);
}

static int hm_real_umount2(const char *target, int flags)
{
	hm_umount2_fn f = HM_NEXT(umount2);

	if (f)
		return f(target, flags);
	return (int)syscall(SYS_umount2, target, flags);
}

static int hm_real_move_mount(int from_dfd, const char *from_path, int to_dfd,
			      const char *to_path, unsigned int flags)
{
	hm_move_mount_fn f = HM_NEXT(move_mount);

	if (f)
		return f(from_dfd, from_path, to_dfd, to_path, flags);
	return (int)syscall(SYS_move_mount, from_dfd, from_path, to_dfd,
			    to_path, flags);
}

static int hm_real_mount_setattr(int dfd, const char *path, unsigned int flags,
				 struct mount_attr *attr, size_t size)
{
	hm_mount_setattr_fn f = HM_NEXT(mount_setattr);

	if (f)
		return f(dfd, path, flags, attr, size);
	return (int)syscall(SYS_mount_setattr, dfd, path, flags, attr, size);
}

static int hm_real_fsopen(const char *fsname, unsigned int flags)
{
	hm_fsopen_fn f = HM_NEXT(fsopen);

	if (f)
		return f(fsname, flags);
	return (int)syscall(SYS_fsopen, fsname, flags);
}

static int hm_real_fsmount(int fsfd, unsigned int flags, unsigned int attrs)
{
	hm_fsmount_fn f = HM_NEXT(fsmount);

	if (f)
		return f(fsfd, flags, attrs);
	return (int)syscall(SYS_fsmount, fsfd, flags, attrs);
}

/* ---- logging ---------------------------------------------------------- */

/* hm_log writes one "libhostmount: ..." line to stderr with a single write(2)
 * and keeps errno. */
__attribute__((format(printf, 1, 2))) static void hm_log(const char *fmt, ...)
{
	int saved = errno;
	char buf[1024];
	size_t n = sizeof("libhostmount: ") - 1;
	va_list ap;
	int m;

	memcpy(buf, "libhostmount: ", n);
	va_start(ap, fmt);
	m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (m > 0)
		n += (size_t)m < sizeof(buf) - n - 1 ? (size_t)m
						      : sizeof(buf) - n - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}

static const char *hm_strerror(int err, char *buf, size_t len)
{
	/* GNU strerror_r: thread-safe, returns the message. */
	return strerror_r(err, buf, len);
}

/* ---- configuration ---------------------------------------------------- */

struct hm_allow {
	char *cpath; /* prefix in the container's view, resolved */
	size_t clen;
	char *hpath; /* the same place in the host's view */
	size_t hlen;
};

struct hm_conf {
	int active; /* a config file with at least one allow line */
	char *mntns;
	struct hm_allow *allow;
	size_t nallow;
	char **fstypes;
	size_t nfstypes;
};

static struct hm_conf hm_conf_data;
/* 0: unread; 2: read; (pid << 2) | 1: being read by process pid. */
static long hm_conf_state;

/* hm_clean_path normalises an absolute path lexically: no "//", ".", "..",
 * or trailing "/". ".." drops the previous component without looking at the
 * file system: the configuration is trusted; targets get realpath(3). */
static int hm_clean_path(const char *in, char *out, size_t outlen)
{
	size_t n = 0;
	const char *p = in;

	if (in[0] != '/' || outlen < 2)
		return -1;
	while (*p) {
		const char *e;
		size_t len;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		for (e = p; *e && *e != '/'; e++)
			;
		len = (size_t)(e - p);
		if (len == 1 && p[0] == '.') {
			/* skip */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			while (n > 0 && out[n - 1] != '/')
				n--;
			if (n > 0)
				n--;
		} else {
			if (n + 1 + len + 1 > outlen)
				return -1;
			out[n++] = '/';
			memcpy(out + n, p, len);
			n += len;
		}
		p = e;
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return 0;
}

/* hm_unescape decodes fstab-style octal escapes (\040 for a space) in place. */
static void hm_unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
		    r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 +
				      (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

static void *hm_grow(void *arr, size_t n, size_t size)
{
	/* Arrays grow one element at a time; configs have a handful of lines. */
	return realloc(arr, (n + 1) * size);
}

static void hm_conf_allow(struct hm_conf *c, const char *cpath,
			  const char *hpath, unsigned lineno)
{
	char clean[PATH_MAX], resolved[PATH_MAX], hclean[PATH_MAX];
	struct hm_allow *a;
	const char *use = clean;

	if (hm_clean_path(cpath, clean, sizeof(clean)) < 0 ||
	    (hpath && hm_clean_path(hpath, hclean, sizeof(hclean)) < 0)) {
		hm_log("%s:%u: allow needs absolute paths; line ignored",
		       HOSTMOUNT_CONF, lineno);
		return;
	}
	/* Targets are compared after symlink resolution, so the prefix is
	 * resolved too (in this process's view) when it exists. */
	if (realpath(clean, resolved))
		use = resolved;
	a = hm_grow(c->allow, c->nallow, sizeof(*a));
	if (!a)
		return;
	c->allow = a;
	a = &c->allow[c->nallow];
	a->cpath = strdup(use);
	a->hpath = strdup(hpath ? hclean : use);
	if (!a->cpath || !a->hpath) {
		free(a->cpath);
		free(a->hpath);
		return;
	}
	a->clen = strlen(a->cpath);
	a->hlen = strlen(a->hpath);
	c->nallow++;
}

static void hm_conf_line(struct hm_conf *c, char *line, unsigned lineno)
{
	char *tok[4];
	int n = 0;
	char *p = line;

	while (n < 4) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (!*p || *p == '#')
			break;
		tok[n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			p++;
		if (*p)
			*p++ = '\0';
	}
	if (n == 0)
		return;
	for (int i = 1; i < n; i++)
		hm_unescape(tok[i]);

	if (strcmp(tok[0], "mntns") == 0) {
		if (n < 2 || tok[1][0] != '/') {
			hm_log("%s:%u: mntns needs an absolute path; line ignored",
			       HOSTMOUNT_CONF, lineno);
			return;
		}
		free(c->mntns);
		c->mntns = strdup(tok[1]);
	} else if (strcmp(tok[0], "allow") == 0) {
		if (n < 2) {
			hm_log("%s:%u: allow needs a path; line ignored",
			       HOSTMOUNT_CONF, lineno);
			return;
		}
		hm_conf_allow(c, tok[1], n > 2 ? tok[2] : NULL, lineno);
	} else if (strcmp(tok[0], "fstype") == 0) {
		char **f;

		if (n < 2)
			return;
		f = hm_grow(c->fstypes, c->nfstypes, sizeof(*f));
		if (!f)
			return;
		c->fstypes = f;
		if ((c->fstypes[c->nfstypes] = strdup(tok[1])))
			c->nfstypes++;
	}
	/* Unknown keys are ignored so newer wrappers can add some. */
}

static void hm_conf_read(struct hm_conf *c)
{
	FILE *f = fopen(HOSTMOUNT_CONF, "re");
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;

	if (!f) {
		char eb[128];

		/* No file: the library was loaded where nobody configured it. */
		if (errno != ENOENT && errno != ENOTDIR)
			hm_log("cannot read %s: %s; passing mount calls through",
			       HOSTMOUNT_CONF, hm_strerror(errno, eb, sizeof(eb)));
		return;
	}
	while (getline(&line, &cap, f) >= 0)
		hm_conf_line(c, line, ++lineno);
	free(line);
	fclose(f);
	c->active = c->nallow > 0;
}

/* hm_conf returns the configuration, reading it on first use. Threads of one
 * process wait for the reader; a child forked while another thread was
 * reading (the reader's pid is not its own) reads the file again. */
static const struct hm_conf *hm_conf(void)
{
	for (;;) {
		long st = __atomic_load_n(&hm_conf_state, __ATOMIC_ACQUIRE);
		long me;

		if (st == 2)
			return &hm_conf_data;
		me = ((long)getpid() << 2) | 1;
		if (st == me) {
			sched_yield();
			continue;
		}
		if (__atomic_compare_exchange_n(&hm_conf_state, &st, me, 0,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			memset(&hm_conf_data, 0, sizeof(hm_conf_data));
			hm_conf_read(&hm_conf_data);
			__atomic_store_n(&hm_conf_state, 2, __ATOMIC_RELEASE);
			return &hm_conf_data;
		}
	}
}

static int hm_fstype_wanted(const struct hm_conf *c, const char *type)
{
	if (c->nfstypes == 0)
		return 1;
	if (!type)
		return 0;
	/* FUSE file systems mount as "fuse.<name>" (glusterfs: fuse.glusterfs). */
	if (strncmp(type, "fuse.", 5) == 0)
		type += 5;
	else if (strncmp(type, "fuseblk.", 8) == 0)
		type += 8;
	for (size_t i = 0; i < c->nfstypes; i++)
		if (strcmp(type, c->fstypes[i]) == 0)
			return 1;
	return 0;
}

/* ---- paths ------------------------------------------------------------ */

static int hm_fd_attached_here(int fd);

static int hm_join(char *out, size_t outlen, const char *a, const char *b)
{
	int n;

	if (a[0] == '/' && a[1] == '\0')
		n = snprintf(out, outlen, "/%s", b);
	else
		n = snprintf(out, outlen, "%s/%s", a, b);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* hm_statx is statx(2) without glibc's wrapper (2.28) or its lstat/fstat
 * symbols (2.33), which would keep the shim from loading in older images. */
static int hm_statx(int dfd, const char *path, int flags, unsigned mask,
		    struct statx *stx)
{
	return (int)syscall(SYS_statx, dfd, path, flags, mask, stx);
}

/* hm_lstat_type returns the st_mode file type of path without following a
 * final symlink, or 0. AT_STATX_DONT_SYNC lets FUSE answer from its cache,
 * so a hung daemon under the path does not block the caller here. */
static unsigned hm_lstat_type(const char *path)
{
	struct statx stx;

	if (hm_statx(AT_FDCWD, path,
		     AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_DONT_SYNC,
		     STATX_TYPE, &stx) < 0)
		return 0;
	return stx.stx_mode & S_IFMT;
}

/*
 * hm_resolve turns a mount target (path relative to dirfd) into an absolute
 * container path without symlinks: the parent is resolved with realpath, so
 * ".." and symlinked directories cannot smuggle a target in or out of an
 * allowlisted prefix. The last component is followed only if follow is set
 * and it is a symlink (mount(2) follows it; umount2 with UMOUNT_NOFOLLOW and
 * move_mount without MOVE_MOUNT_T_SYMLINKS do not); without follow it is not
 * even stat'ed. Returns -1 when the path cannot be resolved; the caller then
 * passes the call through.
 */
static int hm_resolve(int dirfd, const char *path, int follow,
		      char out[PATH_MAX])
{
	char tmp[PATH_MAX], base[PATH_MAX], rparent[PATH_MAX];
	const char *parent, *last;
	size_t n;
	char *slash;

	if (!path || !path[0] || (n = strlen(path)) >= PATH_MAX)
		return -1;
	memcpy(tmp, path, n + 1);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = '\0';
	slash = strrchr(tmp, '/');
	if (!slash) {
		parent = ".";
		last = tmp;
	} else if (slash == tmp) {
		parent = "/";
		last = tmp + 1;
	} else {
		*slash = '\0';
		parent = tmp;
		last = slash + 1;
	}
	/* A relative parent is relative to dirfd; /proc/self/fd/N names it. */
	if (parent[0] != '/' && dirfd != AT_FDCWD) {
		int m = snprintf(base, sizeof(base), "/proc/self/fd/%d/%s",
				 dirfd, parent);

		if (m < 0 || (size_t)m >= sizeof(base))
			return -1;
		parent = base;
	}
	if (!realpath(parent, rparent))
		return -1;
	if (!last[0] || strcmp(last, ".") == 0 || strcmp(last, "..") == 0) {
		char whole[PATH_MAX];

		if (hm_join(whole, sizeof(whole), rparent, last[0] ? last : "."))
			return -1;
		return realpath(whole, out) ? 0 : -1;
	}
	if (hm_join(out, PATH_MAX, rparent, last) < 0)
		return -1;
	if (follow && hm_lstat_type(out) == S_IFLNK) {
		char whole[PATH_MAX];

		if (!realpath(out, whole))
			return -1;
		memcpy(out, whole, strlen(whole) + 1);
	}
	return 0;
}

/* hm_fd_path returns the container path of what fd refers to. */
static int hm_fd_path(int fd, char out[PATH_MAX])
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, out, PATH_MAX - 1);
	if (n <= 0 || out[0] != '/')
		return -1;
	out[n] = '\0';
	return 0;
}

/* hm_match returns the longest allow entry that contains path (component by
 * component: /a/b contains /a/b and /a/b/c, never /a/bc). */
static const struct hm_allow *hm_match(const struct hm_conf *c,
				       const char *path)
{
	const struct hm_allow *best = NULL;

	for (size_t i = 0; i < c->nallow; i++) {
		const struct hm_allow *a = &c->allow[i];
		int in = a->clen == 1 ||
			 (strncmp(path, a->cpath, a->clen) == 0 &&
			  (path[a->clen] == '\0' || path[a->clen] == '/'));

		if (in && (!best || a->clen > best->clen))
			best = a;
	}
	return best;
}

/*
 * Where a path of a redirected call lies on the host: below an allowlisted
 * host prefix from the configuration. The child in the host namespace opens
 * rest beneath prefix with openat2(2) and acts on that fd (hm_open_loc),
 * never on path, which is kept for log lines and the length check only.
 */
struct hm_loc {
	const char *prefix;  /* the allow entry's host path */
	const char *rest;    /* relative to prefix, inside path; "" for prefix */
	char path[PATH_MAX]; /* prefix/rest */
};

/*
 * hm_host_path translates a resolved container path into the host's view.
 * Returns 1 when translated, 0 when path is not allowlisted and -1 when it
 * is but the host path would be too long (the call then fails with
 * ENAMETOOLONG: an allowlisted call never falls back to the container).
 */
static int hm_host_path(const struct hm_conf *c, const char *path,
			struct hm_loc *l)
{
	const struct hm_allow *a = hm_match(c, path);
	const char *rest;
	int n;

	if (!a)
		return 0;
	rest = a->clen == 1 ? (path[1] ? path : "") : path + a->clen;
	if (a->hlen == 1)
		n = snprintf(l->path, PATH_MAX, "%s", rest[0] ? rest : "/");
	else
		n = snprintf(l->path, PATH_MAX, "%s%s", a->hpath, rest);
	if (n < 0 || n >= PATH_MAX)
		return -1;
	l->prefix = a->hpath;
	/* path is clean (realpath, or the kernel's own d_path): one '/'
	 * after the prefix at most. */
	l->rest = l->path + (a->hlen == 1 ? 0 : a->hlen);
	if (l->rest[0] == '/')
		l->rest++;
	return 1;
}

/* hm_target resolves a target relative to dirfd and translates it, with
 * hm_host_path's results. An unresolvable path is not allowlisted: the real
 * call reports the kernel's error for it. */
static int hm_target(const struct hm_conf *c, int dirfd, const char *path,
		     int follow, struct hm_loc *l)
{
	char resolved[PATH_MAX];

	if (hm_resolve(dirfd, path, follow, resolved) < 0)
		return 0;
	return hm_host_path(c, resolved, l);
}

/* hm_fd_target does the same for the mount an fd refers to when that mount
 * is attached in this namespace; 0 for detached or foreign mounts. */
static int hm_fd_target(const struct hm_conf *c, int fd, struct hm_loc *l)
{
	char path[PATH_MAX];

	if (hm_fd_attached_here(fd) != 1 || hm_fd_path(fd, path) < 0)
		return 0;
	return hm_host_path(c, path, l);
}

static int hm_too_long(const char *op, const char *path)
{
	hm_log("%s %s: the host path is too long; nothing done", op,
	       path && path[0] ? path : "(fd)");
	errno = ENAMETOOLONG;
	return -1;
}

/* ---- mount file descriptors ------------------------------------------ */

/* hm_fd_mnt_id reads the mount id of fd from /proc/self/fdinfo. */
static long hm_fd_mnt_id(int fd)
{
	char path[64], buf[512];
	ssize_t n;
	int f;
	char *p;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -1;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, "mnt_id:");
	return p ? strtol(p + 7, NULL, 10) : -1;
}

/* hm_fd_attached_here tells whether the mount fd refers to is attached in
 * this process's mount namespace (1), or is detached (fsmount, open_tree
 * OPEN_TREE_CLONE) or lives in another namespace (0). -1: unknown. */
static int hm_fd_attached_here(int fd)
{
	long id = hm_fd_mnt_id(fd);
	char buf[4096];
	long cur = 0;
	int at_start = 1, in_id = 0, found = 0;
	ssize_t n;
	int f;

	if (id < 0)
		return -1;
	f = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -1;
	/* Only the first field (the mount id) of each line matters. */
	while (!found && (n = read(f, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n && !found; i++) {
			char ch = buf[i];

			if (at_start) {
				at_start = 0;
				in_id = 1;
				cur = 0;
			}
			if (in_id) {
				if (ch >= '0' && ch <= '9') {
					cur = cur * 10 + (ch - '0');
				} else {
					in_id = 0;
					found = cur == id;
				}
			}
			if (ch == '\n')
				at_start = 1;
		}
	}
	close(f);
	return found;
}

/*
 * A small table of mount-related fds this process made: file system contexts
 * from fsopen and detached mounts from fsmount (with their type, for the
 * fstype filter of move_mount), and mounts this shim attached in the host
 * namespace (so libmount's later mount_setattr on that fd follows them).
 * Mount fds carry the device and inode of their root to detect a closed and
 * reused fd number.
 */
enum { HM_REC_FREE, HM_REC_FSCTX, HM_REC_DETACHED, HM_REC_HOST };

struct hm_rec {
	int kind;
	int fd;
	unsigned long long dev, ino;
	char fstype[32];
};

#define HM_NREC 16
static struct hm_rec hm_recs[HM_NREC];
static unsigned hm_recs_next;
static int hm_recs_lock;

static void hm_recs_acquire(void)
{
	while (__atomic_test_and_set(&hm_recs_lock, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void hm_recs_release(void)
{
	__atomic_clear(&hm_recs_lock, __ATOMIC_RELEASE);
}

static int hm_fd_ident(int fd, unsigned long long *dev, unsigned long long *ino)
{
	struct statx stx;

	if (hm_statx(fd, "", AT_EMPTY_PATH, STATX_INO, &stx) < 0)
		return -1;
	*dev = ((unsigned long long)stx.stx_dev_major << 32) | stx.stx_dev_minor;
	*ino = stx.stx_ino;
	return 0;
}

static void hm_rec_put(int fd, int kind, const char *fstype)
{
	struct hm_rec r = { .kind = kind, .fd = fd };
	struct hm_rec *slot = NULL;

	if (kind != HM_REC_FSCTX && hm_fd_ident(fd, &r.dev, &r.ino) < 0)
		return;
	if (fstype)
		snprintf(r.fstype, sizeof(r.fstype), "%s", fstype);
	hm_recs_acquire();
	for (int i = 0; i < HM_NREC && !slot; i++)
		if (hm_recs[i].kind != HM_REC_FREE && hm_recs[i].fd == fd)
			slot = &hm_recs[i];
	for (int i = 0; i < HM_NREC && !slot; i++)
		if (hm_recs[i].kind == HM_REC_FREE)
			slot = &hm_recs[i];
	if (!slot)
		slot = &hm_recs[hm_recs_next++ % HM_NREC];
	*slot = r;
	hm_recs_release();
}

/* hm_rec_get copies the record of fd into out if it is of the given kind
 * and, for mount fds, still refers to the same mount root. */
static int hm_rec_get(int fd, int kind, struct hm_rec *out)
{
	unsigned long long dev = 0, ino = 0;
	int found = 0;

	if (kind != HM_REC_FSCTX && hm_fd_ident(fd, &dev, &ino) < 0)
		return 0;
	hm_recs_acquire();
	for (int i = 0; i < HM_NREC && !found; i++) {
		struct hm_rec *r = &hm_recs[i];

		if (r->kind == kind && r->fd == fd &&
		    (kind == HM_REC_FSCTX || (r->dev == dev && r->ino == ino))) {
			*out = *r;
			found = 1;
		}
	}
	hm_recs_release();
	return found;
}

/* ---- the host call ---------------------------------------------------- */

enum hm_call { HM_CALL_MOUNT, HM_CALL_UMOUNT, HM_CALL_MOVE_MOUNT, HM_CALL_SETATTR };

/*
 * One call to make in the host namespace. Paths below the allowlist travel
 * as locations (to, from), which the child opens there beneath their prefix;
 * the call then names the opened fds, never a path, so that a symlink planted
 * below the allowlist after the shim resolved the path cannot send it
 * elsewhere (hm_open_loc).
 */
struct hm_job {
	const char *op;           /* for the log line */
	enum hm_call call;
	const struct hm_loc *to;   /* target; NULL: fd (mount_setattr) */
	const struct hm_loc *from; /* allowlisted source; NULL: src or fd */
	const char *src;           /* mount(2) source that is no location */
	const char *fstype;        /* mount(2) */
	unsigned long flags;       /* of the call, path flags removed */
	const void *data;          /* mount(2) data, mount_setattr attr */
	size_t size;               /* mount_setattr */
	int fd;                    /* move_mount source, mount_setattr target */
};

enum { HM_STAGE_CALL, HM_STAGE_OPEN, HM_STAGE_SETNS, HM_STAGE_BENEATH,
       HM_STAGE_PROC };

struct hm_result {
	int stage;
	int err;
	int which; /* HM_STAGE_BENEATH: 0 target, 1 source */
};

/*
 * hm_open_loc opens l in the current (host) namespace: the prefix (from the
 * configuration, trusted) with open(2), rest beneath it with openat2(2)
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS. Any symlink below the prefix
 * fails with ELOOP, a way out with EXDEV; mount points below it are crossed,
 * as a path walk does. The shim resolved every symlink in the container
 * already, so a symlink here appeared since: the call is refused. The fd
 * (O_PATH) pins the mount and dentry the call acts on.
 *
 * With parent set, rest must not be empty: it opens the directory that holds
 * the last component and sets *name to that component; buf holds the
 * directory part. Async-signal-safe (the forked child).
 */
static int hm_open_loc(const struct hm_loc *l, int parent, const char **name,
		       char buf[PATH_MAX])
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS,
	};
	const char *rest = l->rest;
	int pfd;

	if (parent) {
		const char *slash = strrchr(rest, '/');

		*name = rest;
		rest = "";
		if (slash) {
			memcpy(buf, l->rest, (size_t)(slash - l->rest));
			buf[slash - l->rest] = '\0';
			*name = slash + 1;
			rest = buf;
		}
		how.flags |= O_DIRECTORY;
	}
	pfd = open(l->prefix, O_PATH | O_CLOEXEC | (rest[0] ? O_DIRECTORY : 0));
	if (pfd < 0 || !rest[0])
		return pfd;
	return (int)syscall(SYS_openat2, pfd, rest, &how, sizeof(how));
}

/* hm_fd_link writes "/proc/self/fd/N" (async-signal-safe). The magic link
 * resolves to exactly what fd refers to: mount(2), which has no fd form,
 * reaches the opened target through it. */
static void hm_fd_link(char out[32], int fd)
{
	static const char pre[] = "/proc/self/fd/";
	char digits[12];
	int n = 0;

	memcpy(out, pre, sizeof(pre) - 1);
	do
		digits[n++] = (char)('0' + fd % 10);
	while ((fd /= 10) > 0);
	for (int i = 0; i < n; i++)
		out[sizeof(pre) - 1 + i] = digits[n - 1 - i];
	out[sizeof(pre) - 1 + n] = '\0';
}

/* hm_do_call makes j's call in the host namespace with its locations opened
 * as tfd and sfd; name is the last component for umount. */
static long hm_do_call(const struct hm_job *j, int tfd, int sfd,
		       const char *name)
{
	char tl[32], sl[32];

	switch (j->call) {
	case HM_CALL_MOUNT:
		hm_fd_link(tl, tfd);
		if (j->from)
			hm_fd_link(sl, sfd);
		return syscall(SYS_mount, j->from ? sl : j->src, tl, j->fstype,
			       j->flags, j->data);
	case HM_CALL_UMOUNT:
		/*
		 * Not through /proc/self/fd: an fd's own reference to the mount
		 * makes a plain umount EBUSY. The name is looked up in the
		 * opened parent, and UMOUNT_NOFOLLOW keeps it from following a
		 * symlink there. The prefix itself (no name, nothing opened)
		 * comes from the configuration.
		 */
		if (!name)
			return syscall(SYS_umount2, j->to->path,
				       j->flags | UMOUNT_NOFOLLOW);
		if (fchdir(tfd) < 0)
			return -1;
		return syscall(SYS_umount2, name, j->flags | UMOUNT_NOFOLLOW);
	case HM_CALL_MOVE_MOUNT:
		return syscall(SYS_move_mount, j->from ? sfd : j->fd, "", tfd, "",
			       j->flags | MOVE_MOUNT_F_EMPTY_PATH |
				       MOVE_MOUNT_T_EMPTY_PATH);
	case HM_CALL_SETATTR:
		return syscall(SYS_mount_setattr, j->to ? tfd : j->fd, "",
			       j->flags | AT_EMPTY_PATH, j->data, j->size);
	}
	errno = EINVAL;
	return -1;
}

/* hm_child runs in the forked child of a possibly multi-threaded process:
 * async-signal-safe calls only (open, setns, openat2, readlink, fchdir,
 * syscall, write, _exit). */
static _Noreturn void hm_child(const char *ns, const struct hm_job *j, int wfd)
{
	struct hm_result r = { HM_STAGE_OPEN, 0, 0 };
	char buf[PATH_MAX], link[32];
	const char *name = NULL;
	int fd = open(ns, O_RDONLY | O_CLOEXEC), tfd = -1, sfd = -1;

	if (fd < 0) {
		r.err = errno;
		goto out;
	}
	r.stage = HM_STAGE_SETNS;
	if (setns(fd, CLONE_NEWNS) < 0) {
		r.err = errno;
		goto out;
	}
	/* setns also moved root and cwd to the host's root. Inherited fds
	 * (FUSE fd=N, detached mount fds) are still valid. */
	r.stage = HM_STAGE_BENEATH;
	if (j->to && (j->call != HM_CALL_UMOUNT || j->to->rest[0])) {
		tfd = hm_open_loc(j->to, j->call == HM_CALL_UMOUNT, &name, buf);
		if (tfd < 0) {
			r.err = errno;
			goto out;
		}
	}
	if (j->from && (sfd = hm_open_loc(j->from, 0, NULL, NULL)) < 0) {
		r.err = errno;
		r.which = 1;
		goto out;
	}
	/* mount(2) reaches the fds through the host's /proc: make sure it
	 * shows this process, rather than fail with a misleading ENOENT. */
	r.stage = HM_STAGE_PROC;
	if (j->call == HM_CALL_MOUNT) {
		hm_fd_link(link, tfd);
		if (readlink(link, buf, sizeof(buf)) < 0) {
			r.err = errno;
			goto out;
		}
	}
	r.stage = HM_STAGE_CALL;
	if (hm_do_call(j, tfd, sfd, name) < 0)
		r.err = errno;
out:
	if (write(wfd, &r, sizeof(r)) < 0) {
		/* the parent sees EOF */
	}
	_exit(r.err & 0xff);
}

/* hm_job_target names j's target for log lines. */
static const char *hm_job_target(const struct hm_job *j)
{
	return j->to ? j->to->path : "(fd)";
}

/* hm_log_failure logs a failure of the shim's own (not the kernel's answer
 * to the call). ENOENT and ENOTDIR while opening a location are what the
 * call itself would have said for a missing target: not logged. */
static void hm_log_failure(const struct hm_conf *c, const struct hm_job *j,
			   const struct hm_result *r)
{
	const struct hm_loc *l = r->which ? j->from : j->to;
	char eb[128];

	switch (r->stage) {
	case HM_STAGE_OPEN:
	case HM_STAGE_SETNS:
		hm_log("%s %s: %s host mount namespace %s: %s; nothing done "
		       "(never inside the container)",
		       j->op, hm_job_target(j),
		       r->stage == HM_STAGE_OPEN ? "cannot open" : "cannot enter",
		       c->mntns, hm_strerror(r->err, eb, sizeof(eb)));
		break;
	case HM_STAGE_BENEATH:
		if (r->err == ENOENT || r->err == ENOTDIR)
			break;
		hm_log("%s %s: cannot open %s%s on the host beneath %s without "
		       "following symlinks: %s; nothing done%s",
		       j->op, hm_job_target(j), r->which ? "the source " : "it",
		       r->which ? l->path : "", l->prefix,
		       hm_strerror(r->err, eb, sizeof(eb)),
		       r->err == ENOSYS ? " (openat2 needs Linux 5.6 or later)"
		       : r->err == ELOOP || r->err == EXDEV
			       ? " (a path below the allowlist is a symlink on "
				 "the host, or became one after the shim "
				 "resolved it in the container)"
			       : "");
		break;
	case HM_STAGE_PROC:
		hm_log("%s %s: the host's /proc does not show this process's "
		       "fds: %s; nothing done (mount procfs at /proc on the host)",
		       j->op, hm_job_target(j),
		       hm_strerror(r->err, eb, sizeof(eb)));
		break;
	}
}

/*
 * hm_host_call makes the call of j in the host mount namespace and returns 0
 * or -1 with errno. It never falls back to the container's namespace.
 *
 * The result travels through a pipe, not the exit status: an application
 * with SIGCHLD ignored (auto-reap) or a SIGCHLD handler that reaps any child
 * would take the status away; waitpid on the exact pid only reaps.
 */
static int hm_host_call(const struct hm_conf *c, const struct hm_job *j)
{
	struct hm_result r;
	sigset_t all, old;
	int p[2], st, err;
	ssize_t n;
	pid_t pid;
	char eb[128];

	if (!c->mntns) {
		hm_log("%s %s: %s has no mntns line; refusing to %s inside the "
		       "container",
		       j->op, hm_job_target(j), HOSTMOUNT_CONF, j->op);
		errno = EINVAL;
		return -1;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		err = errno;
		hm_log("%s %s: pipe: %s", j->op, hm_job_target(j),
		       hm_strerror(err, eb, sizeof(eb)));
		errno = err;
		return -1;
	}
	/* No application signal handler may run in the child. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		hm_child(c->mntns, j, p[1]);
	err = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		hm_log("%s %s: fork: %s", j->op, hm_job_target(j),
		       hm_strerror(err, eb, sizeof(eb)));
		errno = err;
		return -1;
	}
	do
		n = read(p[0], &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(r)) {
		hm_log("%s %s: the child that enters %s died without an answer",
		       j->op, hm_job_target(j), c->mntns);
		errno = EIO;
		return -1;
	}
	if (r.stage != HM_STAGE_CALL)
		hm_log_failure(c, j, &r);
	if (r.err) {
		errno = r.err;
		return -1;
	}
	return 0;
}

/* ---- mount(2) -------------------------------------------------------- */

#define HM_PROPAGATION (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE)

/* hm_bind_in copies the container's source tree (open_tree OPEN_TREE_CLONE,
 * still in this namespace) and attaches the copy at the host target: a
 * detached mount may be attached in any namespace (move_mount(2)). */
static int hm_bind_in(const struct hm_conf *c, const char *source,
		      const struct hm_loc *to, unsigned long flags)
{
	unsigned oflags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
	struct hm_job j = { .op = "mount --bind", .call = HM_CALL_MOVE_MOUNT,
			    .to = to };
	int fd, rc, err;

	if (flags & MS_REC)
		oflags |= AT_RECURSIVE;
	fd = (int)syscall(SYS_open_tree, AT_FDCWD, source, oflags);
	if (fd < 0)
		return -1;
	j.fd = fd;
	rc = hm_host_call(c, &j);
	err = errno;
	close(fd);
	errno = err;
	return rc;
}

/* The kinds of mount(2) call, in the kernel's order of precedence
 * (path_mount()): the flags decide, as they do there. */
enum hm_kind { HM_NEW, HM_REMOUNT, HM_BIND, HM_PROPAGATE, HM_MOVE };

static enum hm_kind hm_mount_kind(unsigned long flags)
{
	/* The kernel drops the historic magic number in the high bits. */
	if ((flags & MS_MGC_MSK) == MS_MGC_VAL)
		flags &= ~MS_MGC_MSK;
	if (flags & MS_REMOUNT)
		return HM_REMOUNT;
	if (flags & MS_BIND)
		return HM_BIND;
	if (flags & HM_PROPAGATION)
		return HM_PROPAGATE;
	if (flags & MS_MOVE)
		return HM_MOVE;
	return HM_NEW;
}

/*
 * mount(2). Redirected when the target is allowlisted, and:
 *  - a new mount: its type passes the fstype filter;
 *  - MS_REMOUNT, propagation changes: always (the mount is on the host);
 *  - MS_BIND: an allowlisted source is bound on the host; any other source
 *    is the container's and is copied in (hm_bind_in);
 *  - MS_MOVE: only from an allowlisted source (an attached container mount
 *    cannot change namespace; that move stays in the container).
 */
HM_EXPORT int hostmount_mount(const char *source, const char *target,
			      const char *fstype, unsigned long flags,
			      const void *data)
{
	const struct hm_conf *c = hm_conf();
	struct hm_loc to, from;
	struct hm_job j = { .op = "mount", .call = HM_CALL_MOUNT, .to = &to,
			    .src = source, .fstype = fstype, .flags = flags,
			    .data = data };
	enum hm_kind kind = hm_mount_kind(flags);
	int t, s;

	if (!c->active || !target)
		goto real;
	if (kind == HM_NEW && !hm_fstype_wanted(c, fstype))
		goto real;
	t = hm_target(c, AT_FDCWD, target, 1, &to);
	if (t == 0)
		goto real;
	if (t < 0)
		return hm_too_long("mount", target);
	if (kind != HM_BIND && kind != HM_MOVE)
		return hm_host_call(c, &j);
	if (!source)
		goto real;
	s = hm_target(c, AT_FDCWD, source, 1, &from);
	if (s < 0)
		return hm_too_long("mount", source);
	if (s > 0) {
		j.from = &from;
		return hm_host_call(c, &j);
	}
	if (kind == HM_BIND)
		return hm_bind_in(c, source, &to, flags);
real:
	return hm_real_mount(source, target, fstype, flags, data);
}

/* ---- umount(2), umount2(2) ------------------------------------------- */

/* hm_umount_host serves umount and umount2: the host's umount2 looks the
 * last component up in its parent opened beneath the prefix, without
 * following it (hm_do_call). */
static int hm_umount_host(const struct hm_conf *c, const char *target,
			  int follow, int flags, int (*real)(const char *, int))
{
	struct hm_loc to;
	struct hm_job j = { .op = "umount", .call = HM_CALL_UMOUNT, .to = &to,
			    .flags = (unsigned)flags };
	int t = c->active ? hm_target(c, AT_FDCWD, target, follow, &to) : 0;

	if (t < 0)
		return hm_too_long("umount", target);
	if (t == 0)
		return real(target, flags);
	return hm_host_call(c, &j);
}

static int hm_real_umount_flags(const char *target, int flags)
{
	(void)flags;
	return hm_real_umount(target);
}

HM_EXPORT int hostmount_umount(const char *target)
{
	return hm_umount_host(hm_conf(), target, 1, 0, hm_real_umount_flags);
}

HM_EXPORT int hostmount_umount2(const char *target, int flags)
{
	return hm_umount_host(hm_conf(), target, !(flags & UMOUNT_NOFOLLOW),
			      flags, hm_real_umount2);
}

/* ---- the new mount API ----------------------------------------------- */

/* Path flags that no longer apply once the shim has resolved the path. */
#define HM_MOVE_F_PATH                                                        \
	(MOVE_MOUNT_F_SYMLINKS | MOVE_MOUNT_F_AUTOMOUNTS | MOVE_MOUNT_F_EMPTY_PATH)
#define HM_MOVE_T_PATH                                                        \
	(MOVE_MOUNT_T_SYMLINKS | MOVE_MOUNT_T_AUTOMOUNTS | MOVE_MOUNT_T_EMPTY_PATH)

static int hm_empty(const char *path)
{
	return path && path[0] == '\0';
}

HM_EXPORT int hostmount_fsopen(const char *fsname, unsigned int flags)
{
	const struct hm_conf *c = hm_conf();
	int fd = hm_real_fsopen(fsname, flags);

	if (fd >= 0 && c->active && c->nfstypes && fsname) {
		int err = errno;

		hm_rec_put(fd, HM_REC_FSCTX, fsname);
		errno = err;
	}
	return fd;
}

HM_EXPORT int hostmount_fsmount(int fsfd, unsigned int flags,
				unsigned int attrs)
{
	const struct hm_conf *c = hm_conf();
	int fd = hm_real_fsmount(fsfd, flags, attrs);
	struct hm_rec r;

	if (fd >= 0 && c->active && c->nfstypes &&
	    hm_rec_get(fsfd, HM_REC_FSCTX, &r)) {
		int err = errno;

		hm_rec_put(fd, HM_REC_DETACHED, r.fstype);
		errno = err;
	}
	return fd;
}

/*
 * move_mount(2). Redirected when the target is allowlisted and the source is
 *  - a detached mount (fsmount, open_tree OPEN_TREE_CLONE): attached at the
 *    host target, which the kernel allows from any namespace. The fstype
 *    filter applies to mounts that fsmount made in this process; a clone is
 *    a bind and, like MS_BIND, is not filtered;
 *  - an allowlisted path or attached mount: a move between host paths.
 * Any other source is an attached container mount, which cannot change
 * namespace: the call is made unchanged, like MS_MOVE.
 */
HM_EXPORT int hostmount_move_mount(int from_dfd, const char *from_path,
				   int to_dfd, const char *to_path,
				   unsigned int flags)
{
	const struct hm_conf *c = hm_conf();
	struct hm_loc to, from;
	struct hm_job j = { .op = "move_mount", .call = HM_CALL_MOVE_MOUNT,
			    .to = &to,
			    .flags = flags & ~(HM_MOVE_F_PATH | HM_MOVE_T_PATH) };
	struct hm_rec r;
	int t, s, rc;

	if (!c->active || (flags & MOVE_MOUNT_SET_GROUP))
		goto real;
	if ((flags & MOVE_MOUNT_T_EMPTY_PATH) && hm_empty(to_path))
		t = hm_fd_target(c, to_dfd, &to);
	else
		t = hm_target(c, to_dfd, to_path,
			      !!(flags & MOVE_MOUNT_T_SYMLINKS), &to);
	if (t < 0)
		return hm_too_long("move_mount", to_path);
	if (t == 0)
		goto real;

	if ((flags & MOVE_MOUNT_F_EMPTY_PATH) && hm_empty(from_path)) {
		if (hm_fd_attached_here(from_dfd) == 0) {
			if (c->nfstypes &&
			    hm_rec_get(from_dfd, HM_REC_DETACHED, &r) &&
			    !hm_fstype_wanted(c, r.fstype))
				goto real;
			j.fd = from_dfd;
			rc = hm_host_call(c, &j);
			if (rc == 0) {
				int err = errno;

				hm_rec_put(from_dfd, HM_REC_HOST, NULL);
				errno = err;
			}
			return rc;
		}
		s = hm_fd_target(c, from_dfd, &from);
	} else {
		s = hm_target(c, from_dfd, from_path,
			      !!(flags & MOVE_MOUNT_F_SYMLINKS), &from);
	}
	if (s < 0)
		return hm_too_long("move_mount", from_path);
	if (s > 0) {
		j.from = &from;
		return hm_host_call(c, &j);
	}
real:
	return hm_real_move_mount(from_dfd, from_path, to_dfd, to_path, flags);
}

/*
 * mount_setattr(2): mount flags and propagation of an allowlisted path go to
 * the host, like MS_REMOUNT and propagation changes through mount(2). An fd
 * (AT_EMPTY_PATH) counts by its path when its mount is attached here; a
 * mount this shim attached on the host is followed there (libmount sets
 * propagation on the fd after move_mount); a detached mount is local.
 */
HM_EXPORT int hostmount_mount_setattr(int dfd, const char *path,
				      unsigned int flags,
				      struct mount_attr *attr, size_t size)
{
	const struct hm_conf *c = hm_conf();
	struct hm_loc to;
	struct hm_job j = { .op = "mount_setattr", .call = HM_CALL_SETATTR,
			    .to = &to,
			    .flags = flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW),
			    .data = attr, .size = size };
	struct hm_rec r;
	int t;

	if (!c->active)
		goto real;
	if ((flags & AT_EMPTY_PATH) && hm_empty(path)) {
		if (hm_rec_get(dfd, HM_REC_HOST, &r)) {
			/* the fd is the mount on the host itself */
			j.to = NULL;
			j.fd = dfd;
			return hm_host_call(c, &j);
		}
		t = hm_fd_target(c, dfd, &to);
	} else {
		t = hm_target(c, dfd, path, !(flags & AT_SYMLINK_NOFOLLOW), &to);
	}
	if (t < 0)
		return hm_too_long("mount_setattr", path);
	if (t > 0)
		return hm_host_call(c, &j);
real:
	return hm_real_mount_setattr(dfd, path, flags, attr, size);
}
