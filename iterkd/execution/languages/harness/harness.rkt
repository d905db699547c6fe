#lang racket/base
;; iterkd's Racket test harness, run in the sandbox beside the untrusted solution.rkt.
;; It writes JSON-lines records to fd 3 (the protocol of iterkd/execution/_harness.py): the value
;; each test call returns, never a verdict. The expected values stay in the supervisor.
;;
;; The program is compiled and run in a namespace of its own, and every piece of it (loading, each
;; test call) runs in a thread of its own under a custodian of its own:
;; - what the harness uses is bound lexically here, so the program cannot redefine it; parameters
;;   the program sets (current-output-port, error-value->string-handler...) are set in its own
;;   thread only, and the records are written to a port that only this module holds;
;; - a custodian memory limit turns growing memory into a MemoryError record instead of the
;;   runtime's fatal "out of memory" abort under the sandbox's RLIMIT_AS (one allocation larger
;;   than what is left raises exn:fail:out-of-memory, also a MemoryError; one that fits but
;;   leaves the collector no room still aborts: the program then dies of SIGABRT);
;; - threads the program leaves running during a test call die with that call's custodian.
(require "tests.rkt") ; entry: the function's name; cases: a vector of (lambda (candidate) ...)

(define SOLUTION "solution.rkt")
(define MODULE-NAME 'iterkd-solution)
(define MAX-DEPTH 100)
(define MAX-NODES 1000000)
(define MAX-TEXT 1000)
(define SAFE-INT (expt 2 53))

;; ---------------------------------------------------------------- records
(define out (open-output-file "/dev/fd/3" #:exists 'append))

(define (emit . parts)
  (for-each (lambda (part) (write-string part out)) parts)
  (write-string "\n" out)
  (flush-output out))

(define (jstring s)
  (define o (open-output-string))
  (write-char #\" o)
  (for ([c (in-string s)])
    (define n (char->integer c))
    (cond
      [(char=? c #\") (write-string "\\\"" o)]
      [(char=? c #\\) (write-string "\\\\" o)]
      ;; control characters and the line separators: \uXXXX (the supervisor splits the records
      ;; with str.splitlines, which also breaks at U+0085, U+2028 and U+2029)
      [(or (< n 32) (<= 127 n 159) (= n #x2028) (= n #x2029))
       (define hex (number->string n 16))
       (write-string "\\u" o)
       (write-string (make-string (- 4 (string-length hex)) #\0) o)
       (write-string hex o)]
      [else (write-char c o)]))
  (write-char #\" o)
  (get-output-string o))

(define (clip s)
  (if (> (string-length s) MAX-TEXT) (substring s 0 MAX-TEXT) s))

;; ---------------------------------------------------------------- values -> tagged JSON
(struct unencodable (msg)) ; raised (not an exn) when a value has no JSON form here

(define (fail-encode fmt . args)
  (raise (unencodable (apply format fmt args))))

(define (encode value)
  (define o (open-output-string))
  (define nodes 0)
  (define (enc v depth key?) ; key?: a hash key, where lists are tuples (Python keys are hashable)
    (set! nodes (add1 nodes))
    (when (or (> depth MAX-DEPTH) (> nodes MAX-NODES))
      (fail-encode "value is nested too deeply or too large"))
    (cond
      [(boolean? v) (write-string (if v "true" "false") o)]
      [(void? v) (write-string "null" o)]
      [(string? v) (write-string (jstring v) o)]
      [(char? v) (write-string (jstring (string v)) o)]
      [(symbol? v) (write-string (jstring (symbol->string v)) o)]
      [(number? v) (write-string (number v) o)]
      [(null? v) (write-string (if key? "{\"$tuple\":[]}" "[]") o)]
      [(pair? v)
       (unless (list? v)
         (fail-encode "returned an improper (or cyclic) list"))
       (sequence (in-list v) depth key?)]
      [(vector? v) (sequence (in-vector v) depth key?)]
      [(hash? v)
       (write-string "{\"$dict\":[" o)
       (for ([(k x) (in-hash v)]
             [i (in-naturals)])
         (write-string (if (zero? i) "[" ",[") o)
         (enc k (add1 depth) #t)
         (write-string "," o)
         (enc x (add1 depth) #f)
         (write-string "]" o))
       (write-string "]}" o)]
      [else (fail-encode "returned ~a, not a number, string, boolean, list or hash" (kind v))]))
  (define (sequence items depth key?)
    (write-string (if key? "{\"$tuple\":[" "[") o)
    (for ([item items] ; walked, not copied: a huge vector stops at MAX-NODES
          [i (in-naturals)])
      (unless (zero? i)
        (write-string "," o))
      (enc item (add1 depth) key?))
    (write-string (if key? "]}" "]") o))
  (enc value 0 #f)
  (get-output-string o))

(define (number n)
  (cond
    [(and (exact-integer? n) (< (- SAFE-INT) n SAFE-INT)) (number->string n)]
    [(exact-integer? n) ; beyond 2^53: hex, as _harness.py does (Python limits int/str digits)
     (define digits (number->string (abs n) 16))
     (string-append "{\"$int\":\"" (if (negative? n) "-" "") "0x" digits "\"}")]
    [(not (real? n)) (fail-encode "returned a complex number")]
    [else
     (define x (real->double-flonum n)) ; exact rationals too: 5/2 -> 2.5
     (cond
       [(eqv? x +inf.0) "{\"$float\":\"inf\"}"]
       [(eqv? x -inf.0) "{\"$float\":\"-inf\"}"]
       [(not (= x x)) "{\"$float\":\"nan\"}"]
       [else (number->string x)])])) ; shortest round-trip form, valid JSON: 2.5, 1e+100, -0.0

(define (kind v) ; what a value is, for messages (never printed: no custom printer runs)
  (cond
    [(procedure? v) "a procedure"]
    [(pair? v) "a list"]
    [(vector? v) "a vector"]
    [(hash? v) "a hash"]
    [else ; struct:point, struct:mpair, struct:semaphore...: the name of its (struct) type
     (define name (symbol->string (vector-ref (struct->vector v) 0)))
     (string-append "a " (if (regexp-match? #rx"^struct:" name) (substring name 7) name))]))

;; ---------------------------------------------------------------- errors -> type and message
(struct exn:exit exn:fail ()) ; `exit` called by the program: an error of the call, as in Python

(define (error-type e)
  (cond
    [(exn:fail:out-of-memory? e) "MemoryError"]
    [(or (exn:fail:read? e) (exn:fail:syntax? e)) "SyntaxError"]
    [(exn:exit? e) "SystemExit"]
    [(exn? e)
     (define name (object-name e))
     (if (symbol? name) (symbol->string name) "RacketError")]
    [else "RacketError"]))

(define (error-message e)
  (clip
   (cond
     [(exn? e) (exn-message e)]
     [(or (string? e) (symbol? e) (number? e) (boolean? e) (char? e))
      (format "raised a non-exception value: ~s" e)] ; only plain values: no user printer runs
     [else (format "raised a non-exception value: ~a" (kind e))])))

(define (error-result e)
  (list 'error (error-type e) (error-message e)))

(define (error-fields type msg)
  (string-append "\"type\":" (jstring type) ",\"msg\":" (jstring (clip msg))))

;; ---------------------------------------------------------------- running untrusted code
(define (address-space-limit)
  (with-handlers ([(lambda (e) #t) (lambda (e) #f)])
    (call-with-input-file "/proc/self/limits"
      (lambda (in)
        (for/or ([line (in-lines in)])
          (define m (regexp-match #px"^Max address space +([0-9]+) " line))
          (and m (string->number (cadr m))))))))

(define (vm-size)
  (with-handlers ([(lambda (e) #t) (lambda (e) #f)])
    (call-with-input-file "/proc/self/status"
      (lambda (in)
        (for/or ([line (in-lines in)])
          (define m (regexp-match #px"^VmSize:\\s+([0-9]+) kB" line))
          (and m (* 1024 (string->number (cadr m)))))))))

;; A third of the address space left once the harness is loaded (#f without RLIMIT_AS): the
;; limit is checked at major collections, and the copying collector needs room beyond the live
;; data, so a larger share lets growing programs reach the fatal abort first.
(define memory-limit
  (let ([as (address-space-limit)]
        [used (vm-size)])
    (and as used (> as used) (quotient (- as used) 3))))

(define (exit-as-error code)
  (raise (exn:exit (format "exit called with ~a" (if (exact-integer? code) code "a value"))
                   (current-continuation-marks))))

(define (run thunk #:keep? [keep? #f])
  ;; -> (list 'value v) | (list 'error type msg). The thunk runs in a thread of its own, under a
  ;; custodian whose parent carries the memory limit: the program holds only the child (its
  ;; current-custodian), so a parent shut down means the limit was hit, not that the program
  ;; shut down its own custodian. With keep?, what the thunk started lives on (the program's
  ;; module-level threads and ports); otherwise it ends with the call.
  (define limited (make-custodian))
  (define custodian (make-custodian limited))
  (when memory-limit
    (custodian-limit-memory limited memory-limit limited))
  (define result #f)
  (define worker
    (parameterize ([current-custodian custodian]
                   [exit-handler exit-as-error])
      (thread
       (lambda ()
         (with-handlers ([(lambda (e) #t) (lambda (e) (set! result (error-result e)))])
           (let ([v (thunk)])
             (set! result (list 'value v))))))))
  (thread-wait worker)
  (define over-limit? (custodian-shut-down? limited))
  (unless keep?
    (custodian-shutdown-all limited))
  (cond
    [result result]
    [over-limit? (list 'error "MemoryError" "out of memory: the memory limit was exceeded")]
    [else (list 'error "RacketError" "the call ended without returning a value")]))

;; ---------------------------------------------------------------- loading the program
(define namespace (make-base-namespace))

;; The solution as one module syntax: a `#lang` file as its reader makes it; otherwise its forms
;; wrapped in `(module _ racket ...)`, as MultiPL-E's `#lang racket` prompt would have it. Read
;; straight from the file, so the line numbers of errors are the answer's own.
(define (read-solution)
  (define lang?
    (call-with-input-file SOLUTION (lambda (in) (and (read-language in (lambda () #f)) #t))))
  (call-with-input-file SOLUTION
    (lambda (in)
      (port-count-lines! in)
      (define source (path->complete-path SOLUTION))
      (parameterize ([read-accept-reader #t]
                     [read-accept-lang #t])
        (if lang?
            (read-module in source)
            (datum->syntax #f (list* 'module MODULE-NAME 'racket (read-forms in source))))))))

(define (read-module in source)
  (define stx (read-syntax source in))
  (unless (eof-object? (read-syntax source in))
    (raise (exn:fail:read "solution.rkt: text after the #lang module"
                          (current-continuation-marks) '())))
  stx)

(define (read-forms in source)
  (let loop ([forms '()])
    (define form (read-syntax source in))
    (if (eof-object? form) (reverse forms) (loop (cons form forms)))))

;; -> the entry procedure, or a string saying why there is none
;; Run in `namespace`. module->namespace reaches the module's own definitions, so the answer
;; need not provide the entry point.
(define (load-solution)
  (parameterize ([current-module-declare-name (make-resolved-module-path MODULE-NAME)])
    (eval (read-solution)))
  (dynamic-require `',MODULE-NAME #f)
  (define defined (module->namespace `',MODULE-NAME))
  (define value (namespace-variable-value (string->symbol entry) #t (lambda () #f) defined))
  (cond
    [(procedure? value) value]
    [value (format "entry point '~a' is not a procedure" entry)]
    [else (format "entry point '~a' is not defined" entry)]))

(define (emit-value prefix value)
  (define encoded ; (cons #t json) or (cons #f why)
    (with-handlers ([unencodable? (lambda (e) (cons #f (unencodable-msg e)))]
                    [(lambda (e) #t) (lambda (e) (cons #f (error-message e)))]) ; e.g. a chaperone
      (cons #t (encode value))))
  (if (car encoded)
      (emit prefix "\"status\":\"value\",\"value\":" (cdr encoded) "}")
      (emit prefix "\"status\":\"bad_value\",\"msg\":" (jstring (clip (cdr encoded))) "}")))

;; ---------------------------------------------------------------- the run
(define (run-cases candidate)
  (for ([call (in-vector cases)]
        [i (in-naturals)])
    (define prefix (string-append "{\"case\":" (number->string i) ","))
    (emit prefix "\"status\":\"start\"}")
    (define outcome
      (parameterize ([current-namespace namespace])
        (run (lambda () (call candidate)))))
    (if (eq? (car outcome) 'error)
        (emit prefix "\"status\":\"error\"," (error-fields (cadr outcome) (caddr outcome)) "}")
        (emit-value prefix (cadr outcome)))))

(emit "{\"event\":\"load_start\"}")
(define loaded (parameterize ([current-namespace namespace]) (run load-solution #:keep? #t)))
(cond
  [(eq? (car loaded) 'error)
   (emit "{\"event\":\"load_error\"," (error-fields (cadr loaded) (caddr loaded)) "}")]
  [(string? (cadr loaded))
   (emit "{\"event\":\"entry_missing\",\"msg\":" (jstring (cadr loaded)) "}")]
  [else
   (emit "{\"event\":\"loaded\"}")
   (run-cases (cadr loaded))
   (emit "{\"event\":\"done\"}")])
