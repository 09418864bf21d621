/*
 * keyward's HSM emulator: a PKCS#11 module for tests and benchmarks that forwards every call to
 * a real module (SoftHSM2 unless KEYWARD_HSM_EMULATOR_TARGET names another) and, on the way,
 * behaves like a network HSM:
 *   - every call waits a round trip (latency_us) before it goes on, asleep, not spinning;
 *   - open sessions are capped (CKR_SESSION_COUNT past max_sessions, reported in C_GetTokenInfo);
 *   - the Nth call of one function from when it is armed fails with a chosen CKR;
 *   - the connection can drop: every session of the target is closed and calls fail until the
 *     application calls C_Finalize and C_Initialize again;
 *   - every call is counted, per function.
 * Tests steer it at run time through the control block (struct control), which lives in the file
 * KEYWARD_HSM_EMULATOR_CONTROL names; see docs/HSM.md. native-test/support/hsm-emulator.ts holds
 * the same layout for TypeScript: change both together and bump CONTROL_VERSION.
 *
 * Calls may be in flight on several sessions from several threads at once: the round-trip wait
 * happens outside every lock, and the only process-wide lock held across a target call is the
 * read side of `connection`, which a drop, C_Initialize and C_Finalize take for writing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h> /* Debian: libp11-kit-dev, built with -I/usr/include/p11-kit-1 */

#define DEFAULT_TARGET "/usr/lib/softhsm/libsofthsm2.so"

/* Every member of CK_FUNCTION_LIST (PKCS#11 2.40), in its order, which is also the order of the call counters. */
#define FUNCTIONS(X)                                                                                 \
  X(C_Initialize) X(C_Finalize) X(C_GetInfo) X(C_GetFunctionList) X(C_GetSlotList) X(C_GetSlotInfo)  \
  X(C_GetTokenInfo) X(C_GetMechanismList) X(C_GetMechanismInfo) X(C_InitToken) X(C_InitPIN)          \
  X(C_SetPIN) X(C_OpenSession) X(C_CloseSession) X(C_CloseAllSessions) X(C_GetSessionInfo)           \
  X(C_GetOperationState) X(C_SetOperationState) X(C_Login) X(C_Logout) X(C_CreateObject)             \
  X(C_CopyObject) X(C_DestroyObject) X(C_GetObjectSize) X(C_GetAttributeValue)                       \
  X(C_SetAttributeValue) X(C_FindObjectsInit) X(C_FindObjects) X(C_FindObjectsFinal)                 \
  X(C_EncryptInit) X(C_Encrypt) X(C_EncryptUpdate) X(C_EncryptFinal) X(C_DecryptInit) X(C_Decrypt)   \
  X(C_DecryptUpdate) X(C_DecryptFinal) X(C_DigestInit) X(C_Digest) X(C_DigestUpdate) X(C_DigestKey)  \
  X(C_DigestFinal) X(C_SignInit) X(C_Sign) X(C_SignUpdate) X(C_SignFinal) X(C_SignRecoverInit)       \
  X(C_SignRecover) X(C_VerifyInit) X(C_Verify) X(C_VerifyUpdate) X(C_VerifyFinal)                    \
  X(C_VerifyRecoverInit) X(C_VerifyRecover) X(C_DigestEncryptUpdate) X(C_DecryptDigestUpdate)        \
  X(C_SignEncryptUpdate) X(C_DecryptVerifyUpdate) X(C_GenerateKey) X(C_GenerateKeyPair) X(C_WrapKey) \
  X(C_UnwrapKey) X(C_DeriveKey) X(C_SeedRandom) X(C_GenerateRandom) X(C_GetFunctionStatus)           \
  X(C_CancelFunction) X(C_WaitForSlotEvent)

enum function {
#define X(name) FN_##name,
  FUNCTIONS(X)
#undef X
  FN_COUNT
};

static const char *const function_names[FN_COUNT] = {
#define X(name) #name,
    FUNCTIONS(X)
#undef X
};

/* ---- control block ---------------------------------------------------------------------- */

#define CONTROL_MAGIC 0x554d454d5348574bULL /* "KWHSMEMU" read as a little-endian uint64 */
#define CONTROL_VERSION 1
#define CONTROL_HEADER_WORDS 32 /* room for the settings later issues add, without moving the counters */

/* One uint64 per field, native byte order; tests read and write it while calls are in flight. */
struct control {
  uint64_t magic;
  uint64_t version;
  uint64_t function_count;
  _Atomic uint64_t latency_us;      /* round-trip wait before every call */
  _Atomic uint64_t max_sessions;    /* 0: no cap */
  _Atomic uint64_t fail_function;   /* index into FUNCTIONS */
  _Atomic uint64_t fail_countdown;  /* 0: disarmed; the call of fail_function that takes it from 1 to 0 fails */
  _Atomic uint64_t fail_ckr;
  _Atomic uint64_t faults_fired;
  _Atomic uint64_t drop_generation; /* incremented to drop the connection */
  _Atomic uint64_t open_sessions;
  _Atomic uint64_t peak_sessions;
  uint64_t reserved[CONTROL_HEADER_WORDS - 12];
  _Atomic uint64_t calls[FN_COUNT];
};
_Static_assert(offsetof(struct control, calls) == CONTROL_HEADER_WORDS * sizeof(uint64_t), "header size");
_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t), "atomics add no size");

/* The CKR names a fault is most often given in the environment; any other CKR can be given as a number. */
#define CKR_NAME(name) {#name, name}
static const struct {
  const char *name;
  CK_RV value;
} ckr_names[] = {
    CKR_NAME(CKR_GENERAL_ERROR),          CKR_NAME(CKR_FUNCTION_FAILED),
    CKR_NAME(CKR_HOST_MEMORY),            CKR_NAME(CKR_DEVICE_ERROR),
    CKR_NAME(CKR_DEVICE_MEMORY),          CKR_NAME(CKR_DEVICE_REMOVED),
    CKR_NAME(CKR_TOKEN_NOT_PRESENT),      CKR_NAME(CKR_SESSION_CLOSED),
    CKR_NAME(CKR_SESSION_COUNT),          CKR_NAME(CKR_SESSION_HANDLE_INVALID),
    CKR_NAME(CKR_OBJECT_HANDLE_INVALID),  CKR_NAME(CKR_KEY_HANDLE_INVALID),
    CKR_NAME(CKR_USER_NOT_LOGGED_IN),     CKR_NAME(CKR_OPERATION_ACTIVE),
    CKR_NAME(CKR_CRYPTOKI_NOT_INITIALIZED), CKR_NAME(CKR_ENCRYPTED_DATA_INVALID),
    CKR_NAME(CKR_PIN_INCORRECT),          CKR_NAME(CKR_PIN_LOCKED),
};

/* ---- module state ----------------------------------------------------------------------- */

static CK_FUNCTION_LIST_PTR target;
static struct control *ctl;
static CK_FUNCTION_LIST emulator_list;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static CK_RV load_result;

/* Held for reading by every call forwarded alongside others, for writing by what ends the connection. */
static pthread_rwlock_t connection;
/* ctl->drop_generation at the last C_Initialize or C_Finalize: the connection is down while they differ. Guarded by `connection`. */
static uint64_t joined_generation;

/* The sessions opened through the emulator: what a drop closes and what the cap counts. */
struct session {
  CK_SESSION_HANDLE handle;
  CK_SLOT_ID slot;
  int rw;
};
static struct {
  pthread_mutex_t lock;
  struct session *list;
  size_t count, capacity;
} sessions = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void complain(const char *what, const char *detail) {
  fprintf(stderr, "keyward-hsm-emulator: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

/* ---- loading ---------------------------------------------------------------------------- */

static CK_RV load_target(void) {
  const char *path = getenv("KEYWARD_HSM_EMULATOR_TARGET");
  if (!path || !*path) path = DEFAULT_TARGET;
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    complain("cannot load the target module", dlerror());
    return CKR_GENERAL_ERROR;
  }
  CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  if (!get) {
    complain("the target module has no C_GetFunctionList", path);
    return CKR_GENERAL_ERROR;
  }
  return get(&target);
}

/* Reads an unsigned number from the environment; an unset variable leaves *out alone. */
static int env_number(const char *var, uint64_t *out) {
  const char *text = getenv(var);
  if (!text || !*text) return 0;
  char *end;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 0);
  if (errno || *end) {
    complain("not a number", var);
    return -1;
  }
  *out = value;
  return 0;
}

static int env_function(const char *var, uint64_t *out) {
  const char *text = getenv(var);
  if (!text || !*text) return 0;
  for (int i = 0; i < FN_COUNT; i++) {
    if (strcmp(text, function_names[i]) == 0) {
      *out = (uint64_t)i;
      return 0;
    }
  }
  complain("not a PKCS#11 function name", var);
  return -1;
}

static int env_ckr(const char *var, uint64_t *out) {
  const char *text = getenv(var);
  if (!text || strncmp(text, "CKR_", 4) != 0) return env_number(var, out);
  for (size_t i = 0; i < sizeof ckr_names / sizeof ckr_names[0]; i++) {
    if (strcmp(text, ckr_names[i].name) == 0) {
      *out = ckr_names[i].value;
      return 0;
    }
  }
  complain("unknown CKR name (give it as a number)", var);
  return -1;
}

/* A new control block takes its settings from the environment. */
static CK_RV init_control(struct control *c) {
  uint64_t latency = 0, max_sessions = 0, fail_function = 0, fail_nth = 0, fail_ckr = CKR_DEVICE_ERROR;
  if (env_number("KEYWARD_HSM_EMULATOR_LATENCY_US", &latency) || env_number("KEYWARD_HSM_EMULATOR_MAX_SESSIONS", &max_sessions) ||
      env_function("KEYWARD_HSM_EMULATOR_FAIL_FUNCTION", &fail_function) || env_number("KEYWARD_HSM_EMULATOR_FAIL_NTH", &fail_nth) ||
      env_ckr("KEYWARD_HSM_EMULATOR_FAIL_CKR", &fail_ckr)) {
    return CKR_GENERAL_ERROR;
  }
  c->magic = CONTROL_MAGIC;
  c->version = CONTROL_VERSION;
  c->function_count = FN_COUNT;
  c->latency_us = latency;
  c->max_sessions = max_sessions;
  c->fail_function = fail_function;
  c->fail_ckr = fail_ckr;
  c->fail_countdown = fail_nth;
  return CKR_OK;
}

/*
 * Maps the control block: the file KEYWARD_HSM_EMULATOR_CONTROL names (created from the
 * environment when missing or empty; used as it is when it already holds one), else private memory
 * set from the environment.
 */
static CK_RV map_control(void) {
  const char *path = getenv("KEYWARD_HSM_EMULATOR_CONTROL");
  if (!path || !*path) {
    ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return ctl == MAP_FAILED ? CKR_HOST_MEMORY : init_control(ctl);
  }
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    complain("cannot open the control file", path);
    if (fd >= 0) close(fd);
    return CKR_GENERAL_ERROR;
  }
  int fresh = st.st_size == 0;
  if ((fresh && ftruncate(fd, sizeof *ctl) != 0) || (!fresh && (size_t)st.st_size != sizeof *ctl)) {
    complain("the control file has the wrong size (another emulator version?)", path);
    close(fd);
    return CKR_GENERAL_ERROR;
  }
  ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (ctl == MAP_FAILED) return CKR_HOST_MEMORY;
  if (fresh) return init_control(ctl);
  if (ctl->magic != CONTROL_MAGIC || ctl->version != CONTROL_VERSION || ctl->function_count != FN_COUNT) {
    complain("the control file is not an emulator control block of this version", path);
    return CKR_GENERAL_ERROR;
  }
  /* A file outlives its process: sessions an earlier process counted died with it. */
  atomic_store(&ctl->open_sessions, 0);
  return CKR_OK;
}

static void build_function_list(void);

static void load(void) {
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  /* A drop or C_Finalize must get in while other threads keep calling. */
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&connection, &attr);
  pthread_rwlockattr_destroy(&attr);
  load_result = load_target();
  if (load_result == CKR_OK) load_result = map_control();
  if (load_result != CKR_OK) return;
  build_function_list();
  joined_generation = atomic_load(&ctl->drop_generation);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  pthread_once(&load_once, load);
  if (load_result != CKR_OK) return load_result;
  if (!list) return CKR_ARGUMENTS_BAD;
  atomic_fetch_add_explicit(&ctl->calls[FN_C_GetFunctionList], 1, memory_order_relaxed);
  *list = &emulator_list;
  return CKR_OK;
}

/* ---- what every call goes through --------------------------------------------------------- */

/* What a call addresses, which decides how it fails once the connection is down and how a fault treats it. */
enum scope {
  LIBRARY,   /* no slot or session: answered even when the connection is down */
  SLOT,      /* a slot or token: CKR_DEVICE_REMOVED when down */
  SESSION,   /* a session: CKR_SESSION_HANDLE_INVALID when down */
  OPERATION, /* a session call that ends a crypto operation: PKCS#11 says an error ends it too, so a
                faulted one still runs on the target (ending the operation there) and its answer is replaced */
};

/* Whether this call is the armed fault's Nth; claims the countdown atomically so exactly one call fires. */
static CK_RV injected_fault(enum function fn) {
  if (atomic_load(&ctl->fail_function) != (uint64_t)fn) return CKR_OK;
  uint64_t left = atomic_load(&ctl->fail_countdown);
  do {
    if (left == 0) return CKR_OK;
  } while (!atomic_compare_exchange_weak(&ctl->fail_countdown, &left, left - 1));
  if (left != 1) return CKR_OK;
  atomic_fetch_add(&ctl->faults_fired, 1);
  return (CK_RV)atomic_load(&ctl->fail_ckr);
}

/* The network round trip: a real sleep, so threads waiting on it cost no CPU. */
static void round_trip(void) {
  uint64_t us = atomic_load_explicit(&ctl->latency_us, memory_order_relaxed);
  if (us == 0) return;
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += (time_t)(us / 1000000);
  until.tv_nsec += (long)(us % 1000000) * 1000;
  if (until.tv_nsec >= 1000000000) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000;
  }
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
  }
}

/* Counts the call, decides whether it is the one to fail, then waits its round trip. Returns the fault's CKR or CKR_OK. */
static CK_RV arrive(enum function fn) {
  atomic_fetch_add_explicit(&ctl->calls[fn], 1, memory_order_relaxed);
  CK_RV fault = injected_fault(fn);
  round_trip();
  return fault;
}

static int connection_down(void) {
  return atomic_load(&ctl->drop_generation) != joined_generation;
}

static void forget_sessions_locked(void) {
  atomic_store(&ctl->open_sessions, 0);
  sessions.count = 0;
}

/* A dropped connection takes the HSM's sessions with it: close them on the target, so their objects die. */
static void sever(void) {
  pthread_rwlock_wrlock(&connection);
  if (connection_down()) {
    pthread_mutex_lock(&sessions.lock);
    for (size_t i = 0; i < sessions.count; i++) target->C_CloseSession(sessions.list[i].handle);
    forget_sessions_locked();
    pthread_mutex_unlock(&sessions.lock);
  }
  pthread_rwlock_unlock(&connection);
}

/* Lets a call through to the target: returns CKR_OK with `connection` held for reading, or the error a down connection gives. */
static CK_RV enter(enum scope scope) {
  pthread_rwlock_rdlock(&connection);
  if (scope == LIBRARY || !connection_down()) return CKR_OK;
  pthread_rwlock_unlock(&connection);
  sever();
  return scope == SLOT ? CKR_DEVICE_REMOVED : CKR_SESSION_HANDLE_INVALID;
}

static void leave(void) {
  pthread_rwlock_unlock(&connection);
}

/* A call with nothing of its own to emulate: count, fault, round trip, connection check, forward. */
#define FORWARD(name, scope, params, args)                           \
  static CK_RV emu_##name params {                                   \
    CK_RV fault = arrive(FN_##name);                                 \
    if (fault != CKR_OK && (scope) != OPERATION) return fault;       \
    CK_RV rv = enter(scope);                                         \
    if (rv != CKR_OK) return rv;                                     \
    rv = target->name args;                                          \
    leave();                                                         \
    return fault != CKR_OK ? fault : rv;                             \
  }

typedef CK_SESSION_HANDLE SH;
typedef CK_OBJECT_HANDLE OH;
typedef CK_ATTRIBUTE_PTR AP;
typedef CK_MECHANISM_PTR MP;
typedef CK_BYTE_PTR BP;
typedef CK_ULONG_PTR LP;
typedef CK_ULONG UL;

FORWARD(C_GetInfo, LIBRARY, (CK_INFO_PTR info), (info))
FORWARD(C_GetSlotList, SLOT, (CK_BBOOL present, CK_SLOT_ID_PTR list, LP count), (present, list, count))
FORWARD(C_GetSlotInfo, SLOT, (CK_SLOT_ID slot, CK_SLOT_INFO_PTR info), (slot, info))
FORWARD(C_GetMechanismList, SLOT, (CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, LP count), (slot, list, count))
FORWARD(C_GetMechanismInfo, SLOT, (CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info), (slot, type, info))
FORWARD(C_InitToken, SLOT, (CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, UL len, CK_UTF8CHAR_PTR label), (slot, pin, len, label))
FORWARD(C_InitPIN, SESSION, (SH s, CK_UTF8CHAR_PTR pin, UL len), (s, pin, len))
FORWARD(C_SetPIN, SESSION, (SH s, CK_UTF8CHAR_PTR old, UL old_len, CK_UTF8CHAR_PTR pin, UL len), (s, old, old_len, pin, len))
FORWARD(C_GetSessionInfo, SESSION, (SH s, CK_SESSION_INFO_PTR info), (s, info))
FORWARD(C_GetOperationState, SESSION, (SH s, BP state, LP len), (s, state, len))
FORWARD(C_SetOperationState, SESSION, (SH s, BP state, UL len, OH enc, OH auth), (s, state, len, enc, auth))
FORWARD(C_Login, SESSION, (SH s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, UL len), (s, user, pin, len))
FORWARD(C_Logout, SESSION, (SH s), (s))
FORWARD(C_CreateObject, SESSION, (SH s, AP t, UL n, CK_OBJECT_HANDLE_PTR o), (s, t, n, o))
FORWARD(C_CopyObject, SESSION, (SH s, OH o, AP t, UL n, CK_OBJECT_HANDLE_PTR copy), (s, o, t, n, copy))
FORWARD(C_DestroyObject, SESSION, (SH s, OH o), (s, o))
FORWARD(C_GetObjectSize, SESSION, (SH s, OH o, LP size), (s, o, size))
FORWARD(C_GetAttributeValue, SESSION, (SH s, OH o, AP t, UL n), (s, o, t, n))
FORWARD(C_SetAttributeValue, SESSION, (SH s, OH o, AP t, UL n), (s, o, t, n))
FORWARD(C_FindObjectsInit, SESSION, (SH s, AP t, UL n), (s, t, n))
FORWARD(C_FindObjects, SESSION, (SH s, CK_OBJECT_HANDLE_PTR found, UL max, LP count), (s, found, max, count))
FORWARD(C_FindObjectsFinal, SESSION, (SH s), (s))
FORWARD(C_EncryptInit, SESSION, (SH s, MP m, OH k), (s, m, k))
FORWARD(C_Encrypt, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_EncryptUpdate, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_EncryptFinal, OPERATION, (SH s, BP out, LP out_len), (s, out, out_len))
FORWARD(C_DecryptInit, SESSION, (SH s, MP m, OH k), (s, m, k))
FORWARD(C_Decrypt, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_DecryptUpdate, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_DecryptFinal, OPERATION, (SH s, BP out, LP out_len), (s, out, out_len))
FORWARD(C_DigestInit, SESSION, (SH s, MP m), (s, m))
FORWARD(C_Digest, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_DigestUpdate, OPERATION, (SH s, BP in, UL in_len), (s, in, in_len))
FORWARD(C_DigestKey, OPERATION, (SH s, OH k), (s, k))
FORWARD(C_DigestFinal, OPERATION, (SH s, BP out, LP out_len), (s, out, out_len))
FORWARD(C_SignInit, SESSION, (SH s, MP m, OH k), (s, m, k))
FORWARD(C_Sign, OPERATION, (SH s, BP in, UL in_len, BP sig, LP sig_len), (s, in, in_len, sig, sig_len))
FORWARD(C_SignUpdate, OPERATION, (SH s, BP in, UL in_len), (s, in, in_len))
FORWARD(C_SignFinal, OPERATION, (SH s, BP sig, LP sig_len), (s, sig, sig_len))
FORWARD(C_SignRecoverInit, SESSION, (SH s, MP m, OH k), (s, m, k))
FORWARD(C_SignRecover, OPERATION, (SH s, BP in, UL in_len, BP sig, LP sig_len), (s, in, in_len, sig, sig_len))
FORWARD(C_VerifyInit, SESSION, (SH s, MP m, OH k), (s, m, k))
FORWARD(C_Verify, OPERATION, (SH s, BP in, UL in_len, BP sig, UL sig_len), (s, in, in_len, sig, sig_len))
FORWARD(C_VerifyUpdate, OPERATION, (SH s, BP in, UL in_len), (s, in, in_len))
FORWARD(C_VerifyFinal, OPERATION, (SH s, BP sig, UL sig_len), (s, sig, sig_len))
FORWARD(C_VerifyRecoverInit, SESSION, (SH s, MP m, OH k), (s, m, k))
FORWARD(C_VerifyRecover, OPERATION, (SH s, BP sig, UL sig_len, BP out, LP out_len), (s, sig, sig_len, out, out_len))
FORWARD(C_DigestEncryptUpdate, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_DecryptDigestUpdate, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_SignEncryptUpdate, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_DecryptVerifyUpdate, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_GenerateKey, SESSION, (SH s, MP m, AP t, UL n, CK_OBJECT_HANDLE_PTR k), (s, m, t, n, k))
FORWARD(C_GenerateKeyPair, SESSION, (SH s, MP m, AP pt, UL pn, AP st, UL sn, CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv),
        (s, m, pt, pn, st, sn, pub, priv))
FORWARD(C_WrapKey, SESSION, (SH s, MP m, OH wk, OH k, BP out, LP out_len), (s, m, wk, k, out, out_len))
FORWARD(C_UnwrapKey, SESSION, (SH s, MP m, OH uk, BP in, UL in_len, AP t, UL n, CK_OBJECT_HANDLE_PTR k), (s, m, uk, in, in_len, t, n, k))
FORWARD(C_DeriveKey, SESSION, (SH s, MP m, OH base, AP t, UL n, CK_OBJECT_HANDLE_PTR k), (s, m, base, t, n, k))
FORWARD(C_SeedRandom, SESSION, (SH s, BP seed, UL len), (s, seed, len))
FORWARD(C_GenerateRandom, SESSION, (SH s, BP out, UL len), (s, out, len))
FORWARD(C_GetFunctionStatus, SESSION, (SH s), (s))
FORWARD(C_CancelFunction, SESSION, (SH s), (s))

/* ---- calls with behaviour of their own ---------------------------------------------------- */

/* A successful C_Initialize is a new connection: a drop requested before it is over. */
static CK_RV emu_C_Initialize(CK_VOID_PTR args) {
  CK_RV rv = arrive(FN_C_Initialize);
  if (rv != CKR_OK) return rv;
  pthread_rwlock_wrlock(&connection);
  rv = target->C_Initialize(args); /* args pass through untouched: SoftHSM needs CKF_OS_LOCKING_OK */
  if (rv == CKR_OK) joined_generation = atomic_load(&ctl->drop_generation);
  pthread_rwlock_unlock(&connection);
  return rv;
}

/* A finalized module has no connection left to lose: until C_Initialize the target answers CKR_CRYPTOKI_NOT_INITIALIZED. */
static CK_RV emu_C_Finalize(CK_VOID_PTR reserved) {
  CK_RV rv = arrive(FN_C_Finalize);
  if (rv != CKR_OK) return rv;
  pthread_rwlock_wrlock(&connection);
  rv = target->C_Finalize(reserved);
  if (rv == CKR_OK) {
    joined_generation = atomic_load(&ctl->drop_generation);
    pthread_mutex_lock(&sessions.lock);
    forget_sessions_locked();
    pthread_mutex_unlock(&sessions.lock);
  }
  pthread_rwlock_unlock(&connection);
  return rv;
}

static CK_RV remember_session_locked(CK_SESSION_HANDLE handle, CK_SLOT_ID slot, int rw) {
  if (sessions.count == sessions.capacity) {
    size_t capacity = sessions.capacity ? 2 * sessions.capacity : 16;
    struct session *list = realloc(sessions.list, capacity * sizeof *list);
    if (!list) return CKR_HOST_MEMORY;
    sessions.list = list;
    sessions.capacity = capacity;
  }
  sessions.list[sessions.count++] = (struct session){handle, slot, rw};
  uint64_t open = atomic_fetch_add(&ctl->open_sessions, 1) + 1;
  uint64_t peak = atomic_load(&ctl->peak_sessions);
  while (open > peak && !atomic_compare_exchange_weak(&ctl->peak_sessions, &peak, open)) {
  }
  return CKR_OK;
}

static void forget_session_locked(size_t i) {
  sessions.list[i] = sessions.list[--sessions.count];
  atomic_fetch_sub(&ctl->open_sessions, 1);
}

/* Opens are serialized under the session list's lock, so the cap is never overshot. */
static CK_RV emu_C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify, CK_SESSION_HANDLE_PTR session) {
  CK_RV rv = arrive(FN_C_OpenSession);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SLOT)) != CKR_OK) return rv;
  pthread_mutex_lock(&sessions.lock);
  uint64_t cap = atomic_load(&ctl->max_sessions);
  if (cap != 0 && sessions.count >= cap) {
    rv = CKR_SESSION_COUNT;
  } else {
    rv = target->C_OpenSession(slot, flags, app, notify, session);
    if (rv == CKR_OK && (rv = remember_session_locked(*session, slot, (flags & CKF_RW_SESSION) != 0)) != CKR_OK) {
      target->C_CloseSession(*session);
    }
  }
  pthread_mutex_unlock(&sessions.lock);
  leave();
  return rv;
}

static CK_RV emu_C_CloseSession(CK_SESSION_HANDLE session) {
  CK_RV rv = arrive(FN_C_CloseSession);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SESSION)) != CKR_OK) return rv;
  pthread_mutex_lock(&sessions.lock);
  rv = target->C_CloseSession(session);
  for (size_t i = 0; rv == CKR_OK && i < sessions.count; i++) {
    if (sessions.list[i].handle == session) {
      forget_session_locked(i);
      break;
    }
  }
  pthread_mutex_unlock(&sessions.lock);
  leave();
  return rv;
}

static CK_RV emu_C_CloseAllSessions(CK_SLOT_ID slot) {
  CK_RV rv = arrive(FN_C_CloseAllSessions);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SLOT)) != CKR_OK) return rv;
  pthread_mutex_lock(&sessions.lock);
  rv = target->C_CloseAllSessions(slot);
  for (size_t i = sessions.count; rv == CKR_OK && i-- > 0;) {
    if (sessions.list[i].slot == slot) forget_session_locked(i);
  }
  pthread_mutex_unlock(&sessions.lock);
  leave();
  return rv;
}

/* Reports the emulator's session counts, and its cap when one is set, in place of the target's. */
static CK_RV emu_C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
  CK_RV rv = arrive(FN_C_GetTokenInfo);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SLOT)) != CKR_OK) return rv;
  rv = target->C_GetTokenInfo(slot, info);
  if (rv == CKR_OK) {
    pthread_mutex_lock(&sessions.lock);
    info->ulSessionCount = info->ulRwSessionCount = 0;
    for (size_t i = 0; i < sessions.count; i++) {
      if (sessions.list[i].slot != slot) continue;
      info->ulSessionCount++;
      if (sessions.list[i].rw) info->ulRwSessionCount++;
    }
    pthread_mutex_unlock(&sessions.lock);
    uint64_t cap = atomic_load(&ctl->max_sessions);
    if (cap != 0) info->ulMaxSessionCount = info->ulMaxRwSessionCount = cap;
  }
  leave();
  return rv;
}

/* Not under `connection`: a wait that blocks would hold off drops and C_Finalize, and C_Finalize is what ends it. */
static CK_RV emu_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved) {
  CK_RV rv = arrive(FN_C_WaitForSlotEvent);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SLOT)) != CKR_OK) return rv;
  leave();
  return target->C_WaitForSlotEvent(flags, slot, reserved);
}

/* The list's own C_GetFunctionList is the exported one. */
#define emu_C_GetFunctionList C_GetFunctionList

static void build_function_list(void) {
  emulator_list.version = target->version;
#define X(name) emulator_list.name = emu_##name;
  FUNCTIONS(X)
#undef X
}
