// mimalloc instead of glibc's malloc: the request path allocates small, short-lived buffers
// on every hop, and glibc's malloc/free was ~14% of the gateway's CPU per proxied request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchyard::cli::run()
}
