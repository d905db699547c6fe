(* iterkd's OCaml test harness, part 1 of 2. It is linked FIRST, before the untrusted
   solution.ml, so it runs before any of the program's code:
   - it opens the result channel (fd 3, reopened as /dev/fd/3: the worker made that pipe this
     uid's) and writes load_start;
   - an exception escaping the program's top-level code becomes a load_error record (not a bare
     "Fatal error" and exit 2);
   - it defines the typed JSON encoders and the case loop that part 2 (iterkd_harness.ml,
     generated for each test suite, linked last) uses.
   Records are JSON lines (the protocol of iterkd/execution/_harness.py): the value each test
   call returns, never a verdict; the expected values stay in the supervisor. *)

let out = open_out_gen [ Open_wronly; Open_binary ] 0 "/dev/fd/3"

let emit line =
  output_string out line;
  output_char out '\n';
  flush out

let () = emit {|{"event":"load_start"}|}

(* set by [run], after every module (the program's included) is initialized *)
let loaded = ref false

let max_text = 1000

(* a returned value's JSON beyond this is a bad value: a cyclic list (let rec l = 1 :: l)
   would otherwise be encoded forever *)
let max_value_bytes = 4 lsl 20

exception Bad_value of string

let clip s = if String.length s <= max_text then s else String.sub s 0 max_text

(* a JSON string for messages: bytes >= 0x80 go raw (the supervisor decodes with replacement) *)
let add_json_string b s =
  Buffer.add_char b '"';
  String.iter
    (fun c ->
      match c with
      | '"' -> Buffer.add_string b {|\"|}
      | '\\' -> Buffer.add_string b {|\\|}
      | c when Char.code c < 0x20 || Char.code c = 0x7f ->
          Buffer.add_string b (Printf.sprintf "\\u%04x" (Char.code c))
      | c -> Buffer.add_char b c)
    s;
  Buffer.add_char b '"'

let json_string s =
  let b = Buffer.create (String.length s + 2) in
  add_json_string b s;
  Buffer.contents b

(* the exception's type for the verdict ("MemoryError" makes it a memory verdict) and text;
   a printer the program registered may raise: it never escapes *)
let describe e =
  match e with
  | Out_of_memory -> ("MemoryError", "Out_of_memory")
  | Stack_overflow -> ("StackOverflow", "Stack_overflow")
  | e ->
      let name = try Printexc.exn_slot_name e with _ -> "Exception" in
      let text = try Printexc.to_string e with _ -> name in
      (name, text)

let error_fields e =
  let name, text = describe e in
  Printf.sprintf {|"type":%s,"msg":%s|} (json_string name) (json_string (clip text))

let () =
  Printexc.set_uncaught_exception_handler (fun e _ ->
      (try
         if not !loaded then emit ({|{"event":"load_error",|} ^ error_fields e ^ "}")
       with _ -> ());
      try prerr_endline ("Fatal error: exception " ^ snd (describe e)) with _ -> ())

(* ------------------------------------------------------------- typed encoders *)
type 'a encoder = Buffer.t -> 'a -> unit

let guard b =
  if Buffer.length b > max_value_bytes then
    raise (Bad_value (Printf.sprintf "value too large to report (over %d bytes)" max_value_bytes))

let int b n = Buffer.add_string b (string_of_int n)

(* %h is exact (hex float); "infinity", "-infinity", "nan" are read by float.fromhex too *)
let float b x =
  Buffer.add_string b {|{"$float":"|};
  Buffer.add_string b (Printf.sprintf "%h" x);
  Buffer.add_string b {|"}|}

let bool b x = Buffer.add_string b (if x then "true" else "false")
let unit b () = Buffer.add_string b "null"
let is_ascii s = String.for_all (fun c -> Char.code c < 0x80) s
let hex = "0123456789abcdef"

(* ASCII as a JSON string; anything else as the bytes in hex ($str), which the supervisor
   decodes as strict UTF-8: an OCaml string is bytes, and invalid UTF-8 must not pass *)
let string b s =
  if 2 * String.length s > max_value_bytes then raise (Bad_value "string too large to report");
  if is_ascii s then add_json_string b s
  else begin
    Buffer.add_string b {|{"$str":"|};
    String.iter
      (fun c ->
        Buffer.add_char b hex.[Char.code c lsr 4];
        Buffer.add_char b hex.[Char.code c land 15])
      s;
    Buffer.add_string b {|"}|}
  end;
  guard b

let list enc b xs =
  Buffer.add_char b '[';
  List.iteri
    (fun i x ->
      if i > 0 then Buffer.add_char b ',';
      enc b x;
      guard b)
    xs;
  Buffer.add_char b ']'

let option enc b = function None -> Buffer.add_string b "null" | Some x -> enc b x

(* a tuple's fields, each already bound to its encoder (the generated code destructures) *)
let tuple b fields =
  Buffer.add_string b {|{"$tuple":[|};
  List.iteri
    (fun i field ->
      if i > 0 then Buffer.add_char b ',';
      field b)
    fields;
  Buffer.add_string b "]}"

let tuple0 b () = tuple b []
let tuple1 enc b x = tuple b [ (fun b -> enc b x) ]

(* a Python dict is an association list; one key twice has no dict to compare with *)
let dict kenc venc b pairs =
  Buffer.add_string b {|{"$dict":[|};
  List.iteri
    (fun i (k, v) ->
      if i > 0 then Buffer.add_char b ',';
      Buffer.add_char b '[';
      kenc b k;
      Buffer.add_char b ',';
      venc b v;
      Buffer.add_char b ']';
      guard b)
    pairs;
  Buffer.add_string b "]}";
  let keys = List.map fst pairs in
  if List.length (List.sort_uniq compare keys) <> List.length keys then
    raise (Bad_value "a key appears twice in the association list")

(* ------------------------------------------------------------- the cases *)
let value_fields enc v =
  let b = Buffer.create 64 in
  match enc b v with
  | () -> {|"status":"value","value":|} ^ Buffer.contents b
  | exception Bad_value text -> {|"status":"bad_value","msg":|} ^ json_string text
  | exception e ->
      {|"status":"bad_value","msg":|} ^ json_string ("cannot encode the value: " ^ snd (describe e))

let case_fields enc case =
  match case () with
  | v -> value_fields enc v
  | exception e -> {|"status":"error",|} ^ error_fields e

let run (enc : 'a encoder) (cases : (unit -> 'a) array) =
  loaded := true;
  emit {|{"event":"loaded"}|};
  Array.iteri
    (fun i case ->
      let prefix = Printf.sprintf {|{"case":%d,|} i in
      emit (prefix ^ {|"status":"start"}|});
      emit (prefix ^ case_fields enc case ^ "}"))
    cases;
  emit {|{"event":"done"}|}
