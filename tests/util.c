#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

static char *slurp(int fd)
{
	struct stat st;
	char *buf;
	ssize_t n;

	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = calloc(1, (size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	n = pread(fd, buf, (size_t)st.st_size, 0);
	ck_assert_int_eq(n, st.st_size);
	close(fd);
	return buf;
}

static int temp_fd(void)
{
	char path[] = "/tmp/shadowvm-test.XXXXXX";
	int fd = mkstemp(path);

	ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	return fd;
}

void run_cmd(char *const argv[], struct run_result *res)
{
	posix_spawn_file_actions_t fa;
	struct timespec t0, t1;
	int ofd = temp_fd(), efd = temp_fd(), ws;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, ofd, STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, efd, STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_msg(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) == 0,
		      "cannot run %s", argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	res->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	res->secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	res->out = slurp(ofd);
	res->err = slurp(efd);
}

void run_result_free(struct run_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
}

char *write_temp(const void *data, size_t len)
{
	char *path = strdup("/tmp/shadowvm-img.XXXXXX");
	int fd = mkstemp(path);

	ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}
