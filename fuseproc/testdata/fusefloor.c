// fusefloor: the FUSE floor in C for BenchmarkRead. One directory with
// one file, "status", whose 1,320 bytes are fixed, served with libfuse's
// low-level API, direct I/O and the timeouts of the Go bare server
// (entries and attributes one second; FLUSH answered ENOSYS once), in
// one thread: the least a FUSE server can do per request, the cost of
// a FUSE round trip on the machine.
//
//	cc -O2 -o fusefloor fusefloor.c $(pkg-config --cflags --libs fuse3)
//	./fusefloor DIR    # in the foreground; "ready" on stderr once mounted
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <string.h>

static char content[1320];

static void fill(fuse_ino_t ino, struct stat *st) {
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
	}
}

static void lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
	struct fuse_entry_param e;
	if (parent != FUSE_ROOT_ID || strcmp(name, "status") != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof e);
	e.ino = 2;
	e.attr_timeout = 1;
	e.entry_timeout = 1;
	fill(2, &e.attr);
	fuse_reply_entry(req, &e);
}

static void getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
	struct stat st;
	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != 2) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill(ino, &st);
	fuse_reply_attr(req, &st, 1);
}

static void open_(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
	(void)ino;
	fi->direct_io = 1;
	fuse_reply_open(req, fi);
}

static void read_(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
	(void)ino;
	(void)fi;
	if (off >= (off_t)sizeof content) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = sizeof content - (size_t)off;
	fuse_reply_buf(req, content + off, n < size ? n : size);
}

static void flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS);
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = lookup, .getattr = getattr, .open = open_, .read = read_, .flush = flush,
};

int main(int argc, char *argv[]) {
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	for (size_t i = 0; i < sizeof content; i++)
		content[i] = i % 11 == 10 ? '\n' : 'x';
	if (fuse_parse_cmdline(&args, &opts) != 0 || opts.mountpoint == NULL)
		return 2;
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
	// SIGTERM ends the loop, and the server unmounts.
	if (se == NULL || fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, opts.mountpoint) != 0)
		return 1;
	fprintf(stderr, "ready\n");
	int r = fuse_session_loop(se);
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	return r != 0;
}
