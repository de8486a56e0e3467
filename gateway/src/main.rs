// mimalloc: glibc's malloc showed up as ~10% of the request path's CPU in profiles, and it
// keeps freed memory after bursts (RSS stayed at its peak after 10k streams closed).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchyard::cli::run()
}
