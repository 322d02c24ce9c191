/*
 * The registry of built-in handlers.  Adding a handler is one file in
 * src/proto/ defining its const struct proto_ops, one line in the list
 * below and one object in the Makefile's PROTO_OBJS (docs/protocols.md).
 */
#include "proto/proto.h"

#include <string.h>

extern const struct proto_ops proto_echo;
extern const struct proto_ops proto_line;
extern const struct proto_ops proto_reverse;
extern const struct proto_ops proto_resp;
extern const struct proto_ops proto_sha256;

const struct proto_ops *const proto_handlers[] = {
	&proto_echo,
	&proto_line,
	&proto_reverse,
	&proto_resp,
	&proto_sha256,
	NULL,
};

const struct proto_ops *proto_find(const char *name)
{
	for (const struct proto_ops *const *p = proto_handlers; *p; p++)
		if (!strcmp((*p)->name, name))
			return *p;
	return NULL;
}
