/*
 * In-guest tests: what the suite (tests/guest/suite/hostile.c) and the hostile
 * program (t_hostile.c) say to each other.
 *
 * The suite sends t_hostile its own image (HOSTILE_IMAGE, with the segment)
 * on the endpoint in startup slot SERVICE, for the modes that start
 * children. t_hostile calls the endpoint in slot PARENT with
 * HOSTILE_HOLDING once its attack holds what it took (w0: how many), and
 * the suite answers after it has served another program meanwhile; it
 * sends HOSTILE_DONE when its mode is over.
 */
#ifndef TESTS_GUEST_HOSTILE_H
#define TESTS_GUEST_HOSTILE_H

enum hostile_label {
    HOSTILE_HOLDING = 1,
    HOSTILE_IMAGE = 2,
    HOSTILE_SEGMENT = 3, /* between t_hostile and its children */
    HOSTILE_DONE = 4,
};

#endif
