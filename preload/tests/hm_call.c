/*
 * hm_call: makes one mount-family call through whatever the dynamic linker
 * bound (the shim under LD_PRELOAD) and exits with its errno (0: success).
 * Exit codes >= 200 are harness errors. Used by hm_test.
 *
 *   hm_call [-t] [-s ign|reap] [-C DIR] OP ARGS...
 *     -t         make the call from a second thread while a third one runs
 *     -s ign     SIGCHLD ignored (children are reaped by the kernel)
 *     -s reap    a SIGCHLD handler that reaps every child with waitpid(-1)
 *     -C DIR     chdir first
 *   OPs ("-" stands for NULL):
 *     mount SRC TGT TYPE FLAGS DATA   FLAGS: comma list of bind,rec,remount,
 *                                      rdonly,move,shared,private,slave or -
 *     umount TGT
 *     umount2 TGT FLAGS               FLAGS: detach,nofollow or -
 *     fuse TGT TYPE                   open /dev/fuse, mount TYPE with fd=N,
 *                                      close the fd (the mount stays, dead)
 *     fsmount TYPE TGT [PROP]         fsopen, fsconfig, fsmount, move_mount,
 *                                      then mount_setattr(fd) PROP (shared):
 *                                      the libmount 2.39 sequence
 *     treebind SRC TGT                open_tree(OPEN_TREE_CLONE), move_mount
 *     movemount SRC TGT               move_mount by path (a move)
 *     setattr TGT PROP                mount_setattr by path
 *     setattr-fd TGT PROP             open_tree(TGT), mount_setattr(fd, "")
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#define HARNESS_ERR 200

static int argc_g;
static char **argv_g;

static const char *arg(int i)
{
	if (i >= argc_g) {
		fprintf(stderr, "hm_call: missing argument %d\n", i);
		exit(HARNESS_ERR);
	}
	return strcmp(argv_g[i], "-") == 0 ? NULL : argv_g[i];
}

static unsigned long mount_flags(const char *s)
{
	static const struct {
		const char *name;
		unsigned long flag;
	} names[] = {
		{ "bind", MS_BIND },     { "rec", MS_REC },
		{ "remount", MS_REMOUNT }, { "rdonly", MS_RDONLY },
		{ "move", MS_MOVE },     { "shared", MS_SHARED },
		{ "private", MS_PRIVATE }, { "slave", MS_SLAVE },
		{ "detach", MNT_DETACH }, { "nofollow", UMOUNT_NOFOLLOW },
	};
	unsigned long f = 0;
	char buf[256], *save = NULL;

	if (!s)
		return 0;
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(t, names[i].name) == 0)
				break;
		if (i == sizeof(names) / sizeof(names[0])) {
			fprintf(stderr, "hm_call: unknown flag %s\n", t);
			exit(HARNESS_ERR);
		}
		f |= names[i].flag;
	}
	return f;
}

static unsigned long propagation(const char *s)
{
	unsigned long f = mount_flags(s);

	return f & (MS_SHARED | MS_PRIVATE | MS_SLAVE);
}

/* each op returns 0 or an errno */
static int op_fuse(void)
{
	char data[128];
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC), rc;

	if (fd < 0) {
		perror("hm_call: open /dev/fuse");
		exit(HARNESS_ERR + 1);
	}
	snprintf(data, sizeof(data), "fd=%d,rootmode=40000,user_id=0,group_id=0",
		 fd);
	rc = mount("hm-fuse", arg(2), arg(3), MS_NOSUID | MS_NODEV, data);
	rc = rc < 0 ? errno : 0;
	close(fd);
	return rc;
}

static int op_fsmount(void)
{
	const char *prop = argc_g > 4 ? arg(4) : NULL;
	int fs = fsopen(arg(2), FSOPEN_CLOEXEC), mnt;

	if (fs < 0)
		return errno;
	if (fsconfig(fs, FSCONFIG_SET_STRING, "source", "hm-new", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return errno;
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, 0);
	if (mnt < 0)
		return errno;
	close(fs);
	if (move_mount(mnt, "", AT_FDCWD, arg(3), MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return errno;
	if (prop) {
		struct mount_attr a = { .propagation = propagation(prop) };

		if (mount_setattr(mnt, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
			return errno;
	}
	close(mnt);
	return 0;
}

static int op_treebind(void)
{
	int t = open_tree(AT_FDCWD, arg(2), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);

	if (t < 0)
		return errno;
	if (move_mount(t, "", AT_FDCWD, arg(3), MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return errno;
	close(t);
	return 0;
}

static int op_setattr(int by_fd)
{
	struct mount_attr a = { .propagation = propagation(arg(3)) };
	int t;

	if (!by_fd)
		return mount_setattr(AT_FDCWD, arg(2), 0, &a, sizeof(a)) < 0
			       ? errno
			       : 0;
	t = open_tree(AT_FDCWD, arg(2), OPEN_TREE_CLOEXEC);
	if (t < 0)
		return errno;
	if (mount_setattr(t, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
		return errno;
	close(t);
	return 0;
}

static int run_op(void)
{
	const char *op = arg(1);

	if (strcmp(op, "mount") == 0)
		return mount(arg(2), arg(3), arg(4), mount_flags(arg(5)),
			     argc_g > 6 ? arg(6) : NULL) < 0
			       ? errno
			       : 0;
	if (strcmp(op, "umount") == 0)
		return umount(arg(2)) < 0 ? errno : 0;
	if (strcmp(op, "umount2") == 0)
		return umount2(arg(2), (int)mount_flags(arg(3))) < 0 ? errno : 0;
	if (strcmp(op, "fuse") == 0)
		return op_fuse();
	if (strcmp(op, "fsmount") == 0)
		return op_fsmount();
	if (strcmp(op, "treebind") == 0)
		return op_treebind();
	if (strcmp(op, "movemount") == 0)
		return move_mount(AT_FDCWD, arg(2), AT_FDCWD, arg(3), 0) < 0
			       ? errno
			       : 0;
	if (strcmp(op, "setattr") == 0)
		return op_setattr(0);
	if (strcmp(op, "setattr-fd") == 0)
		return op_setattr(1);
	fprintf(stderr, "hm_call: unknown op %s\n", op);
	exit(HARNESS_ERR);
}

static void reap_all(int sig)
{
	int saved = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static volatile int stop;

static void *spin(void *unused)
{
	(void)unused;
	while (!stop)
		usleep(1000);
	return NULL;
}

static void *call_thread(void *res)
{
	*(int *)res = run_op();
	return NULL;
}

int main(int argc, char **argv)
{
	int threaded = 0, opt, rc;

	while ((opt = getopt(argc, argv, "+ts:C:")) != -1) {
		switch (opt) {
		case 't':
			threaded = 1;
			break;
		case 's':
			if (strcmp(optarg, "ign") == 0) {
				signal(SIGCHLD, SIG_IGN);
			} else {
				struct sigaction sa = { .sa_handler = reap_all };

				sigaction(SIGCHLD, &sa, NULL);
			}
			break;
		case 'C':
			if (chdir(optarg) < 0) {
				perror("hm_call: chdir");
				return HARNESS_ERR;
			}
			break;
		default:
			return HARNESS_ERR;
		}
	}
	argc_g = argc - optind + 1;
	argv_g = argv + optind - 1;
	if (threaded) {
		pthread_t a, b;

		pthread_create(&a, NULL, spin, NULL);
		pthread_create(&b, NULL, call_thread, &rc);
		pthread_join(b, NULL);
		stop = 1;
		pthread_join(a, NULL);
	} else {
		rc = run_op();
	}
	return rc;
}
