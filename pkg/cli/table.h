/* Aligned text tables as kubectl prints them: a header row in capitals, columns left-aligned
 * and separated by at least three spaces, no trailing spaces. Rows can be printed as they come
 * (get -w): each print covers the rows added since the last one, with column widths that only
 * grow, so a watch keeps the columns of its first listing as long as the values fit. Cells are
 * made safe with cli_cell(). Not thread-safe; owned by its caller. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "base/macro.h"

#define CLI_TABLE_COLUMNS_MAX 32
#define CLI_TABLE_CELL_MAX    256 /* bytes of one cell; longer text is cut with "..." */
#define CLI_TABLE_PADDING     3

typedef struct cli_table cli_table;

/* A table of n_cols columns (1..CLI_TABLE_COLUMNS_MAX) with these headers. */
cli_table *cli_table_new(size_t n_cols, const char *const *headers);
cli_table *cli_table_free(cli_table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(cli_table *, cli_table_free);

/* Appends a row of n_cols cells (copied; NULL reads as ""). */
void cli_table_add(cli_table *t, const char *const *cells);
/* Rows added so far, not counting the header. */
size_t cli_table_rows(const cli_table *t);
/* Writes the rows not written yet (the header first, unless no_header), then forgets them.
 * Returns 0 or -EIO when the stream failed. */
int cli_table_print(cli_table *t, FILE *f, bool no_header);
/* The same into a malloc'd string (for describe). */
char *cli_table_to_string(cli_table *t, const char *indent);
