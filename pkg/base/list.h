/* Intrusive doubly linked lists, after systemd's list.h: an element has `prev` and `next`
 * pointers, and a list is a pointer to its first element (NULL when empty). Each argument is
 * evaluated once. Not thread-safe: the owner's lock, if any, covers the list. */
#pragma once

#include <stddef.h>

/* Puts item at the front of the list `head` points to. */
#define LIST_PREPEND(head, item)                                                                   \
    do {                                                                                           \
        typeof(item) _item = (item);                                                               \
        typeof(&(head)) _head = &(head);                                                           \
        _item->prev = NULL;                                                                        \
        _item->next = *_head;                                                                      \
        if (_item->next)                                                                           \
            _item->next->prev = _item;                                                             \
        *_head = _item;                                                                            \
    } while (0)

/* Takes item off the list `head` points to; its links are cleared. */
#define LIST_REMOVE(head, item)                                                                    \
    do {                                                                                           \
        typeof(item) _item = (item);                                                               \
        typeof(&(head)) _head = &(head);                                                           \
        if (_item->prev)                                                                           \
            _item->prev->next = _item->next;                                                       \
        else                                                                                       \
            *_head = _item->next;                                                                  \
        if (_item->next)                                                                           \
            _item->next->prev = _item->prev;                                                       \
        _item->prev = _item->next = NULL;                                                          \
    } while (0)

/* The same for a list that also keeps its last element (an LRU's oldest) in `tail`, through the
 * link fields named `prev` and `next` (an element may be on several such lists). */
#define LIST_PREPEND_TAIL(prev, next, head, tail, item)                                            \
    do {                                                                                           \
        typeof(item) _item = (item);                                                               \
        typeof(&(head)) _head = &(head);                                                           \
        typeof(&(tail)) _tail = &(tail);                                                           \
        _item->prev = NULL;                                                                        \
        _item->next = *_head;                                                                      \
        if (_item->next)                                                                           \
            _item->next->prev = _item;                                                             \
        *_head = _item;                                                                            \
        if (!*_tail)                                                                               \
            *_tail = _item;                                                                        \
    } while (0)

#define LIST_REMOVE_TAIL(prev, next, head, tail, item)                                             \
    do {                                                                                           \
        typeof(item) _item = (item);                                                               \
        typeof(&(head)) _head = &(head);                                                           \
        typeof(&(tail)) _tail = &(tail);                                                           \
        if (_item->prev)                                                                           \
            _item->prev->next = _item->next;                                                       \
        else                                                                                       \
            *_head = _item->next;                                                                  \
        if (_item->next)                                                                           \
            _item->next->prev = _item->prev;                                                       \
        else                                                                                       \
            *_tail = _item->prev;                                                                  \
        _item->prev = _item->next = NULL;                                                          \
    } while (0)
