/* Aligned tables for stratusctl (see table.h). */
#include "cli/table.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "cli/format.h"

struct cli_table {
    size_t n_cols;
    size_t widths[CLI_TABLE_COLUMNS_MAX];
    char **cells; /* pending rows, row-major, n_cols each; row 0 is the header until printed */
    size_t n_rows, allocated;
    size_t total; /* data rows ever added */
    bool header_pending;
};

static void table_push(cli_table *t, const char *const *cells)
{
    t->cells = xgrow(t->cells, &t->allocated, (t->n_rows + 1) * t->n_cols, sizeof(char *));
    for (size_t i = 0; i < t->n_cols; i++) {
        char *c = cli_cell(cells[i], CLI_TABLE_CELL_MAX, "");
        size_t w = cli_text_width(c);
        if (w > t->widths[i])
            t->widths[i] = w;
        t->cells[t->n_rows * t->n_cols + i] = c;
    }
    t->n_rows++;
}

cli_table *cli_table_new(size_t n_cols, const char *const *headers)
{
    cli_table *t = xnew(cli_table, 1);
    t->n_cols = MIN(MAX(n_cols, (size_t)1), (size_t)CLI_TABLE_COLUMNS_MAX);
    table_push(t, headers);
    t->header_pending = true;
    return t;
}

static void table_drop_pending(cli_table *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    t->n_rows = 0;
    t->header_pending = false;
}

cli_table *cli_table_free(cli_table *t)
{
    if (!t)
        return NULL;
    table_drop_pending(t);
    free(t->cells);
    free(t);
    return NULL;
}

void cli_table_add(cli_table *t, const char *const *cells)
{
    table_push(t, cells);
    t->total++;
}

size_t cli_table_rows(const cli_table *t)
{
    return t->total;
}

static void table_render(cli_table *t, buf *b, bool no_header, const char *indent)
{
    for (size_t r = 0; r < t->n_rows; r++) {
        if (r == 0 && t->header_pending && no_header)
            continue;
        buf_append_str(b, indent);
        size_t line_start = b->len;
        for (size_t i = 0; i < t->n_cols; i++) {
            const char *c = t->cells[r * t->n_cols + i];
            buf_append_str(b, c);
            if (i + 1 < t->n_cols) {
                size_t pad = t->widths[i] - cli_text_width(c) + CLI_TABLE_PADDING;
                for (size_t j = 0; j < pad; j++)
                    buf_append(b, " ", 1);
            }
        }
        while (b->len > line_start && b->data[b->len - 1] == ' ')
            b->len--; /* empty last columns leave no trailing spaces */
        buf_append(b, "\n", 1);
    }
    table_drop_pending(t);
}

int cli_table_print(cli_table *t, FILE *f, bool no_header)
{
    buf b = BUF_INIT(0);
    table_render(t, &b, no_header, "");
    size_t n = b.len ? fwrite(b.data, 1, b.len, f) : 0;
    bool ok = n == b.len && fflush(f) == 0;
    buf_done(&b);
    return ok ? 0 : -EIO;
}

char *cli_table_to_string(cli_table *t, const char *indent)
{
    buf b = BUF_INIT(0);
    table_render(t, &b, false, indent ? indent : "");
    return buf_steal(&b, NULL);
}
