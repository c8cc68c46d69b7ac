/* corpus.c -- a directory of .txt and .md documents, read into a BM25 index. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corpus.h"
#include "passage.h"
#include "token.h"

/* The documents' relative paths, as rag_corpus keeps them. */
struct list {
	char **v;
	size_t n, cap;
};

static void
list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* Appends "rel/name" (or name); 0, or -1 if out of memory. */
static int
list_add(struct list *l, const char *rel, const char *name)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->v, cap * sizeof *v);
		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	size_t len = (rel ? strlen(rel) + 1 : 0) + strlen(name) + 1;
	char *p = malloc(len);
	if (p == NULL)
		return -1;
	if (rel != NULL)
		snprintf(p, len, "%s/%s", rel, name);
	else
		snprintf(p, len, "%s", name);
	l->v[l->n++] = p;
	return 0;
}

static int
by_bytes(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
is_document(const char *name)
{
	size_t n = strlen(name);
	return (n > 4 && strcasecmp(name + n - 4, ".txt") == 0) ||
	    (n > 3 && strcasecmp(name + n - 3, ".md") == 0);
}

/*
 * Adds the documents under top/rel (rel NULL: top itself) to l.  Returns 0,
 * or -1 with a message in err.
 */
static int
walk(const char *top, const char *rel, struct list *l, char *err, size_t errlen)
{
	char path[4096];
	if (rel != NULL)
		snprintf(path, sizeof path, "%s/%s", top, rel);
	else
		snprintf(path, sizeof path, "%s", top);
	DIR *d = opendir(path);
	if (d == NULL) {
		if (rel != NULL)
			snprintf(err, errlen, "corpus '%s': cannot read the directory '%s': %s",
			    top, rel, strerror(errno));
		else
			snprintf(err, errlen, "corpus '%s': cannot read the directory: %s",
			    top, strerror(errno));
		return -1;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		int isdir = e->d_type == DT_DIR, isreg = e->d_type == DT_REG;
		if (e->d_type != DT_DIR && e->d_type != DT_REG) {
			/* a link, or a file system that does not say: ask */
			struct stat st;
			if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
				continue; /* gone since readdir */
			isdir = S_ISDIR(st.st_mode);
			isreg = S_ISREG(st.st_mode);
			if (S_ISLNK(st.st_mode) && fstatat(dirfd(d), e->d_name, &st, 0) == 0)
				isreg = S_ISREG(st.st_mode); /* links to directories: no */
		}
		if (isdir) {
			struct list sub = { 0 };
			if (list_add(&sub, rel, e->d_name) != 0) {
				snprintf(err, errlen, "out of memory");
				rc = -1;
			} else {
				rc = walk(top, sub.v[0], l, err, errlen);
			}
			list_free(&sub);
		} else if (isreg && is_document(e->d_name)) {
			if (list_add(l, rel, e->d_name) != 0) {
				snprintf(err, errlen, "out of memory");
				rc = -1;
			}
		}
	}
	if (rc == 0 && errno != 0) {
		snprintf(err, errlen, "corpus '%s': cannot read the directory%s%s%s: %s", top,
		    rel ? " '" : "", rel ? rel : "", rel ? "'" : "", strerror(errno));
		rc = -1;
	}
	closedir(d);
	return rc;
}

/* Lists the documents under dir, sorted.  0, or -1 with a message in err. */
static int
list_documents(const char *dir, struct list *l, char *err, size_t errlen)
{
	struct stat st;
	if (stat(dir, &st) != 0) {
		if (errno == ENOENT)
			snprintf(err, errlen, "corpus '%s': no such directory", dir);
		else
			snprintf(err, errlen, "corpus '%s': %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "corpus '%s' is not a directory; give the directory "
		    "that holds the .txt and .md files", dir);
		return -1;
	}
	if (walk(dir, NULL, l, err, errlen) != 0) {
		list_free(l);
		return -1;
	}
	if (l->n > 1)
		qsort(l->v, l->n, sizeof *l->v, by_bytes);
	return 0;
}

static void
no_documents(const char *dir, char *err, size_t errlen)
{
	snprintf(err, errlen, "corpus '%s' has no .txt or .md files with text; add "
	    "some, or point corpus at the directory that holds them", dir);
}

/*
 * Reads top/rel whole into *buf (of *cap bytes, grown as needed); *len is
 * its length.  Returns 0, or -1 with a message in err.
 */
static int
read_document(const char *top, const char *rel, char **buf, size_t *cap, size_t *len,
    char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", top, rel);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	struct stat st;
	if (fstat(fd, &st) != 0)
		goto fail_fd;
	*len = 0;
	/* the size is a hint: read until the end, in case the file grows */
	size_t want = (size_t)st.st_size + 1;
	for (;;) {
		if (*cap < *len + want || *buf == NULL) {
			size_t n = *cap ? *cap : 4096;
			while (n < *len + want)
				n *= 2;
			char *b = realloc(*buf, n);
			if (b == NULL) {
				close(fd);
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			*buf = b;
			*cap = n;
		}
		ssize_t r = read(fd, *buf + *len, *cap - *len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			goto fail_fd;
		}
		if (r == 0)
			break;
		*len += (size_t)r;
		want = 4096;
	}
	close(fd);
	return 0;
fail_fd:;
	int e = errno;
	close(fd);
	errno = e;
fail:
	snprintf(err, errlen, "corpus '%s': cannot read '%s': %s", top, rel, strerror(errno));
	return -1;
}

int
rag_corpus_check(const char *dir, char *err, size_t errlen)
{
	struct list l = { 0 };
	char *buf = NULL;
	size_t cap = 0, len;
	int found = 0, rc = 0;

	if (list_documents(dir, &l, err, errlen) != 0)
		return -1;
	/* every document must open; only the first with a token is read through */
	for (size_t i = 0; i < l.n && rc == 0; i++) {
		if (found) {
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", dir, l.v[i]);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				snprintf(err, errlen, "corpus '%s': cannot read '%s': %s", dir,
				    l.v[i], strerror(errno));
				rc = -1;
			} else {
				close(fd);
			}
			continue;
		}
		if (read_document(dir, l.v[i], &buf, &cap, &len, err, errlen) != 0)
			rc = -1;
		else if (rag_token_any(buf, len))
			found = 1;
	}
	if (rc == 0 && !found) {
		no_documents(dir, err, errlen);
		rc = -1;
	}
	free(buf);
	list_free(&l);
	return rc;
}

struct adding {
	struct bm25 *ix;
	uint32_t doc;
	size_t added;
};

static int
add_passage(void *ctx, const char *text, size_t len)
{
	struct adding *a = ctx;
	int rc = bm25_add(a->ix, a->doc, text, len);
	if (rc == 0)
		a->added++;
	return rc < 0 ? -1 : 0;
}

struct rag_corpus *
rag_corpus_load(const char *dir, size_t max_passage, double k1, double b,
    char *err, size_t errlen)
{
	struct list l = { 0 };
	char *buf = NULL;
	size_t cap = 0, len;

	struct rag_corpus *c = calloc(1, sizeof *c);
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (list_documents(dir, &l, err, errlen) != 0)
		goto fail;
	c->files = l.v;
	c->n_files = l.n;
	if (l.n > UINT32_MAX) {
		snprintf(err, errlen, "corpus '%s' has more than %u documents", dir, UINT32_MAX);
		goto fail;
	}
	if ((c->index = bm25_new(k1, b)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < l.n; i++) {
		if (read_document(dir, l.v[i], &buf, &cap, &len, err, errlen) != 0)
			goto fail;
		c->bytes += len;
		struct adding a = { c->index, (uint32_t)i, 0 };
		if (rag_split(buf, len, max_passage, add_passage, &a) != 0) {
			snprintf(err, errlen, "corpus '%s': out of memory (or over 2^32 passages "
			    "or tokens) at '%s'", dir, l.v[i]);
			goto fail;
		}
		if (a.added > 0)
			c->n_documents++;
	}
	if (bm25_passages(c->index) == 0) {
		no_documents(dir, err, errlen);
		goto fail;
	}
	if (bm25_finish(c->index) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	free(buf);
	return c;
fail:
	free(buf);
	rag_corpus_free(c);
	return NULL;
}

int
rag_corpus_list(const char *dir, char ***files, size_t *n, char *err, size_t errlen)
{
	struct list l = { 0 };
	if (list_documents(dir, &l, err, errlen) != 0)
		return -1;
	*files = l.v;
	*n = l.n;
	return 0;
}

void
rag_corpus_list_free(char **files, size_t n)
{
	struct list l = { files, n, n };
	list_free(&l);
}

void
rag_corpus_free(struct rag_corpus *c)
{
	if (c == NULL)
		return;
	rag_corpus_list_free(c->files, c->n_files);
	bm25_free(c->index);
	free(c);
}
