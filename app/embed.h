/*
 * embed.h — Lua modules compiled into the copycat-lua binary.
 *
 * tools/embed.lua turns every lua/copycat/ file into one entry of
 * embed_modules (terminated by a NULL name); main.c registers each as
 * package.preload[name], so the program needs no files at run time.
 */
#ifndef COPYCAT_EMBED_H
#define COPYCAT_EMBED_H

#include <stddef.h>

struct embed_module {
  const char *name;      /* module name, e.g. "copycat.runtime" */
  const char *chunkname; /* "@lua/copycat/runtime.lua", for tracebacks */
  const char *src;
  size_t len;
};

extern const struct embed_module embed_modules[];

#endif
