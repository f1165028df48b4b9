/* version.h — the one place the version number is written. */
#ifndef COPYCAT_VERSION_H
#define COPYCAT_VERSION_H

#define COPYCAT_VERSION "0.1.0"

#endif
