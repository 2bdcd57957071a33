// whoami answers every HTTP request with the container's hostname and addresses, so a
// scenario can tell which task served it (like jwilder/whoami and traefik/whoami).
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func answer(w http.ResponseWriter, _ *http.Request) {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "unknown"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "I'm %s\n", hostname)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return
	}
	for _, addr := range addrs {
		if ipnet, ok := addr.(*net.IPNet); ok && !ipnet.IP.IsLoopback() {
			fmt.Fprintf(w, "IP: %s\n", ipnet.IP)
		}
	}
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8000"
	}
	server := &http.Server{
		Addr:              ":" + port,
		Handler:           http.HandlerFunc(answer),
		ReadHeaderTimeout: 10 * time.Second,
	}
	// As PID 1 in a container the kernel gives SIGTERM no default action: without this
	// handler every `docker stop` or task shutdown would wait out its grace period.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	drained := make(chan struct{})
	go func() {
		<-ctx.Done()
		// Finish the requests in flight, but never hold up the stop for long.
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		server.Shutdown(shutdown)
		close(drained)
	}()
	log.Printf("whoami listening on :%s", port)
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	<-drained
}
