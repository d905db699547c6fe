# iterkd's R test harness, run in the sandbox beside the untrusted solution.R.
# It writes JSON-lines records to fd 3 (the protocol of iterkd/execution/_harness.py): the value
# each test call returns, never a verdict. The expected values stay in the supervisor.
#
# The whole harness is one top-level expression evaluated in its own environment whose parent is
# the base environment, and every function it calls is bound in that environment before the
# program runs: a program that redefines writeLines, sprintf, tryCatch... in the global
# environment does not change how values are reported. (R lets a program unlock and rebind base
# functions too; the harness keeps its own references, but base's internals may then break: that
# ends the program's own run, as a crash or an error, never as a pass.) The harness ends with
# quit(), so R never reads further lines of this file, which the program could have appended to.
# The program is evaluated in a fresh environment whose parent is the global one, so it sees the
# packages Rscript attaches (stats, utils, methods...) as any R script does.
local(
  {
    # ---------------------------------------------------------------- captured before the program
    `%in%` <- `%in%`
    all <- all
    any <- any
    as.integer <- as.integer
    attr <- attr
    `attr<-` <- `attr<-`
    baseenv <- baseenv
    conditionMessage <- conditionMessage
    enc2utf8 <- enc2utf8
    Encoding <- Encoding
    eval <- eval
    file <- file
    flush <- flush
    get0 <- get0
    globalenv <- globalenv
    grepl <- grepl
    gsub <- gsub
    inherits <- inherits
    intToUtf8 <- intToUtf8
    is.character <- is.character
    is.finite <- is.finite
    is.function <- is.function
    is.infinite <- is.infinite
    is.na <- is.na
    is.nan <- is.nan
    is.null <- is.null
    isTRUE <- isTRUE
    length <- length
    list <- list
    matrix <- matrix
    new.env <- new.env
    parse <- parse
    paste <- paste
    paste0 <- paste0
    quit <- quit
    rep_len <- rep_len
    seq_len <- seq_len
    set_encoding <- `Encoding<-`
    sprintf <- sprintf
    stop <- stop
    substr <- substr
    tryCatch <- tryCatch
    typeof <- typeof
    unclass <- unclass
    utf8ToInt <- utf8ToInt
    validUTF8 <- validUTF8
    vapply <- vapply
    writeLines <- writeLines

    MAX_DEPTH <- 100L
    MAX_NODES <- 1000000L
    MAX_TEXT <- 1000L
    ATOMIC <- c("logical", "integer", "double", "character")
    MEMORY_ERROR <- "cannot allocate|memory exhausted"

    out <- file("/dev/fd/3", open = "w", raw = TRUE) # a pipe: no seeking, no warning
    emit <- function(line) {
      writeLines(line, out, useBytes = TRUE) # the bytes are UTF-8 already: no re-encoding
      flush(out)
    }

    # ---------------------------------------------------------------- JSON
    escape_controls <- function(s) {
      codes <- utf8ToInt(s)
      chars <- intToUtf8(codes, multiple = TRUE)
      bad <- codes < 32L | codes == 127L
      chars[bad] <- sprintf("\\u%04x", codes[bad])
      paste(chars, collapse = "")
    }

    json_strings <- function(x) {
      # character vector without NA -> JSON string literals, UTF-8 passed through unchanged
      # checked before enc2utf8, which would turn invalid bytes into "<ff>"; latin1-marked
      # strings are converted, native ones are UTF-8 already (the locale is C.UTF-8)
      if (!all(validUTF8(x[Encoding(x) != "latin1"]))) stop("returned a string that is not UTF-8")
      x <- set_encoding(enc2utf8(x), "UTF-8") # "bytes"-marked strings would make gsub refuse them
      x <- gsub("\\", "\\\\", x, fixed = TRUE)
      x <- gsub("\"", "\\\"", x, fixed = TRUE)
      ctrl <- grepl("[\\x01-\\x1f\\x7f]", x, perl = TRUE)
      if (any(ctrl)) x[ctrl] <- vapply(x[ctrl], escape_controls, "", USE.NAMES = FALSE)
      paste0("\"", x, "\"")
    }

    text <- function(value) {
      # a message for a record: any string a program made may be odd; never lets that escape
      tryCatch(
        {
          if (!is.character(value) || length(value) != 1L || is.na(value)) stop("not a string")
          json_strings(substr(value, 1L, MAX_TEXT))
        },
        error = function(e) "\"<unprintable>\""
      )
    }

    # ---------------------------------------------------------------- values
    # One JSON token per element of an atomic vector; NA of any type is null.
    scalar_tokens <- function(x) {
      kind <- typeof(x)
      tokens <- rep_len("null", length(x))
      known <- !is.na(x)
      if (kind == "logical") {
        tokens[known & x] <- "true"
        tokens[known & !x] <- "false"
      } else if (kind == "integer") {
        tokens[known] <- sprintf("%d", x[known])
      } else if (kind == "double") {
        finite <- is.finite(x)
        tokens[finite] <- sprintf("%.17g", x[finite]) # 17 digits: the double, exactly
        tokens[is.nan(x)] <- "{\"$float\":\"nan\"}"
        tokens[is.infinite(x) & x > 0] <- "{\"$float\":\"inf\"}"
        tokens[is.infinite(x) & x < 0] <- "{\"$float\":\"-inf\"}"
      } else {
        tokens[known] <- json_strings(x[known])
      }
      tokens
    }

    nodes <- 0L
    encode <- function(x, depth) {
      if (depth > MAX_DEPTH) stop("value nested too deeply")
      if (is.null(x)) {
        return("null")
      }
      kind <- typeof(x)
      if (kind != "list" && !(kind %in% ATOMIC)) {
        stop(sprintf("returned a value of type %s, not a vector or a list", kind))
      }
      if (inherits(x, "factor")) x <- factor_labels(x)
      x <- unclass(x) # no S3 method of the program runs while the value is read
      nodes <<- nodes + length(x)
      if (nodes > MAX_NODES) stop("value too large")
      tokens <- if (kind == "list") {
        vapply(x, encode, "", depth + 1L, USE.NAMES = FALSE)
      } else {
        scalar_tokens(x)
      }
      shape(x, tokens)
    }

    factor_labels <- function(x) {
      labels <- attr(x, "levels")[as.integer(unclass(x))]
      attr(labels, "names") <- attr(x, "names")
      labels
    }

    # How the elements' tokens are put together: a matrix is a list of its rows, a vector or list
    # with names is a dict, a length-1 vector is its scalar, anything else a list.
    shape <- function(x, tokens) {
      dims <- attr(x, "dim")
      if (length(dims) == 2L) {
        return(rows(tokens, dims))
      }
      if (length(dims) > 2L) stop("returned an array of more than 2 dimensions")
      keys <- if (length(dims) == 1L) attr(x, "dimnames")[[1L]] else attr(x, "names")
      if (!is.null(keys)) {
        pairs <- paste0("[", scalar_tokens(keys), ",", tokens, "]")
        return(paste0("{\"$dict\":[", if (length(tokens)) paste(pairs, collapse = ","), "]}"))
      }
      if (length(tokens) == 1L && typeof(x) != "list") {
        return(tokens)
      }
      paste0("[", paste(tokens, collapse = ","), "]")
    }

    rows <- function(tokens, dims) {
      index <- matrix(seq_len(length(tokens)), dims[[1L]], dims[[2L]]) # column-major, as R
      one_row <- function(i) paste0("[", paste(tokens[index[i, ]], collapse = ","), "]")
      paste0("[", paste(vapply(seq_len(dims[[1L]]), one_row, ""), collapse = ","), "]")
    }

    error_fields <- function(cond) {
      message <- tryCatch(conditionMessage(cond), error = function(e) NA)
      memory <- tryCatch(grepl(MEMORY_ERROR, message), error = function(e) FALSE)
      type <- if (isTRUE(memory)) "MemoryError" else "RError"
      paste0("\"type\":\"", type, "\",\"msg\":", text(message))
    }

    # ---------------------------------------------------------------- the program
    spec <- eval(parse(file = "tests.R", keep.source = FALSE, encoding = "UTF-8")[[1L]],
      new.env(parent = baseenv())) # the calls' own names (c, list) are base's, not the program's
    emit("{\"event\":\"load_start\"}")
    exprs <- tryCatch(
      parse(file = "solution.R", keep.source = FALSE, encoding = "UTF-8"),
      error = function(e) e
    )
    if (inherits(exprs, "error")) {
      emit(paste0("{\"event\":\"load_error\",\"type\":\"SyntaxError\",\"msg\":", text(
        tryCatch(conditionMessage(exprs), error = function(e) NA)
      ), "}"))
      quit(save = "no", status = 0L, runLast = FALSE)
    }
    program <- new.env(parent = globalenv()) # the search path: stats, utils... as in Rscript
    loaded <- tryCatch(
      {
        for (expr in exprs) eval(expr, program)
        NULL
      },
      error = function(e) e
    )
    if (!is.null(loaded)) {
      emit(paste0("{\"event\":\"load_error\",", error_fields(loaded), "}"))
      quit(save = "no", status = 0L, runLast = FALSE)
    }
    candidate <- get0(spec$entry, envir = program, mode = "function", inherits = FALSE)
    if (is.null(candidate)) { # defined with <<- or assign(..., globalenv())
      candidate <- get0(spec$entry, envir = globalenv(), mode = "function", inherits = FALSE)
    }
    if (!is.function(candidate)) {
      msg <- paste0("entry point '", spec$entry, "' is not defined as a function")
      emit(paste0("{\"event\":\"entry_missing\",\"msg\":", text(msg), "}"))
      quit(save = "no", status = 0L, runLast = FALSE)
    }
    emit("{\"event\":\"loaded\"}")

    # ---------------------------------------------------------------- the tests
    for (i in seq_len(length(spec$cases))) {
      prefix <- paste0("{\"case\":", i - 1L, ",")
      emit(paste0(prefix, "\"status\":\"start\"}"))
      case <- spec$cases[[i]]
      called <- tryCatch(list(case(candidate)), error = function(e) e)
      if (inherits(called, "error")) {
        emit(paste0(prefix, "\"status\":\"error\",", error_fields(called), "}"))
        next
      }
      nodes <- 0L
      json <- tryCatch(encode(called[[1L]], 0L), error = function(e) e)
      if (inherits(json, "error")) {
        message <- tryCatch(conditionMessage(json), error = function(e) NA)
        emit(paste0(prefix, "\"status\":\"bad_value\",\"msg\":", text(message), "}"))
      } else {
        emit(paste0(prefix, "\"status\":\"value\",\"value\":", json, "}"))
      }
    }
    emit("{\"event\":\"done\"}")
    quit(save = "no", status = 0L, runLast = FALSE)
  },
  envir = new.env(parent = baseenv())
)
